package hubmetrics.kstreams;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;

/**
 * The key of the repartition topic, of the dedup store (after the user hash) and of the weekly
 * counts: one (model, ISO week). --keys=string: "model|YYYY-Www" as a Java String (String serde,
 * the week formatted per event); --keys=binary: bytes, the week as its Monday's day number.
 */
abstract class KeyCodec<K> {
  abstract Serde<K> serde();

  /** The key of an accepted event of UTC day `day`. */
  abstract K key(ParsedEvent e, long day);

  /** The key's bytes, as stored after the user hash in the dedup store. */
  abstract byte[] bytes(K key);

  abstract String model(K key);

  /** "YYYY-Www". */
  abstract String week(K key);

  static KeyCodec<?> of(Config config, ModelIndex index) {
    return config.binaryKeys() ? new BinaryKeys(index) : new StringKeys();
  }

  static final class StringKeys extends KeyCodec<String> {
    @Override
    Serde<String> serde() {
      return Serdes.String();
    }

    @Override
    String key(ParsedEvent e, long day) {
      return e.model() + "|" + ParsedEvent.isoWeek(day);
    }

    @Override
    byte[] bytes(String key) {
      return key.getBytes(StandardCharsets.UTF_8);
    }

    @Override
    String model(String key) {
      return key.substring(0, key.lastIndexOf('|'));
    }

    @Override
    String week(String key) {
      return key.substring(key.lastIndexOf('|') + 1);
    }
  }

  /**
   * [0][model index, 4 bytes][Monday, 4 bytes] for a model of the catalog (--model_index), else
   * [1][the model id's bytes][Monday, 4 bytes]; the Monday is a day number since 1970-01-01.
   */
  static final class BinaryKeys extends KeyCodec<byte[]> {
    private final ModelIndex index; // null: ids only

    BinaryKeys(ModelIndex index) {
      this.index = index;
    }

    @Override
    Serde<byte[]> serde() {
      return Serdes.ByteArray();
    }

    @Override
    byte[] key(ParsedEvent e, long day) {
      final int monday = (int) (day - Math.floorMod(day + 3, 7L));
      if (index != null) {
        final int i =
            e.modelOff >= 0
                ? index.lookup(e.raw, e.modelOff, e.modelLen)
                : lookup(e.modelId.getBytes(StandardCharsets.UTF_8));
        if (i >= 0) return ByteBuffer.allocate(9).put((byte) 0).putInt(i).putInt(monday).array();
      }
      final int len = e.modelOff >= 0 ? e.modelLen : -1;
      if (len >= 0) {
        final byte[] k = new byte[1 + len + 4];
        k[0] = 1;
        System.arraycopy(e.raw, e.modelOff, k, 1, len);
        ByteBuffer.wrap(k).putInt(1 + len, monday);
        return k;
      }
      final byte[] m = e.modelId.getBytes(StandardCharsets.UTF_8);
      return ByteBuffer.allocate(1 + m.length + 4).put((byte) 1).put(m).putInt(monday).array();
    }

    private int lookup(byte[] id) {
      return index.lookup(id, 0, id.length);
    }

    @Override
    byte[] bytes(byte[] key) {
      return key;
    }

    @Override
    String model(byte[] key) {
      if (key[0] == 0) return index.id(ByteBuffer.wrap(key).getInt(1));
      return new String(Arrays.copyOfRange(key, 1, key.length - 4), StandardCharsets.UTF_8);
    }

    @Override
    String week(byte[] key) {
      return ParsedEvent.isoWeek(ByteBuffer.wrap(key).getInt(key.length - 4));
    }
  }
}
