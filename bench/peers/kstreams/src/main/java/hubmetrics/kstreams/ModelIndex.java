package hubmetrics.kstreams;

import hubmetrics.v1.Events.ModelInfo;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeSet;
import java.util.stream.Collectors;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * --model_index: every model id of the catalog topic (read to its end at start, as hubmetricsd
 * loads its catalog) numbered by its place in sorted order, looked up from the id's bytes
 * without making a String (open addressing over byte ranges). The numbering is fixed for one
 * run of the benchmark; a deployment would have to persist it (a changelogged store), since a
 * catalog that changed between restarts would renumber the models its stores already hold.
 */
final class ModelIndex {
  private final String[] ids;
  private final byte[][] slotIds;
  private final int[] slotIndex;
  private final int mask;

  private ModelIndex(String[] ids) {
    this.ids = ids;
    int cap = 16;
    while (cap < ids.length * 2) cap <<= 1;
    mask = cap - 1;
    slotIds = new byte[cap][];
    slotIndex = new int[cap];
    for (int i = 0; i < ids.length; i++) {
      final byte[] b = ids[i].getBytes(StandardCharsets.UTF_8);
      int h = hash(b, 0, b.length) & mask;
      while (slotIds[h] != null) h = (h + 1) & mask;
      slotIds[h] = b;
      slotIndex[h] = i;
    }
  }

  static ModelIndex fromIds(List<String> ids) {
    return new ModelIndex(new TreeSet<>(ids).toArray(new String[0]));
  }

  /** The catalog topic read_committed from its start to its end offsets. */
  static ModelIndex load(String brokers, String topic, Duration timeout) {
    final Properties c = new Properties();
    c.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, brokers);
    c.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
    c.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    c.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 10000);
    final TreeSet<String> ids = new TreeSet<>();
    try (KafkaConsumer<byte[], byte[]> consumer =
        new KafkaConsumer<>(c, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
      final List<TopicPartition> tps =
          consumer.partitionsFor(topic, timeout).stream()
              .map(p -> new TopicPartition(p.topic(), p.partition()))
              .collect(Collectors.toList());
      consumer.assign(tps);
      consumer.seekToBeginning(tps);
      final Map<TopicPartition, Long> end = consumer.endOffsets(tps, timeout);
      final long deadline = System.currentTimeMillis() + timeout.toMillis();
      while (tps.stream().anyMatch(tp -> consumer.position(tp) < end.get(tp))) {
        if (System.currentTimeMillis() > deadline) {
          throw new IllegalStateException("catalog topic " + topic + " not read in " + timeout);
        }
        for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
          String id = "";
          try {
            id = r.value() == null ? "" : ModelInfo.parseFrom(r.value()).getModelId();
          } catch (com.google.protobuf.InvalidProtocolBufferException e) {
            // A catalog record that is not binary ModelInfo: its key is the id.
          }
          if (id.isEmpty() && r.key() != null) id = new String(r.key(), StandardCharsets.UTF_8);
          if (!id.isEmpty()) ids.add(id);
        }
      }
    }
    return new ModelIndex(ids.toArray(new String[0]));
  }

  int size() {
    return ids.length;
  }

  String id(int index) {
    return ids[index];
  }

  /** The index of the id b[off, off + len), or -1 when it is not in the catalog. */
  int lookup(byte[] b, int off, int len) {
    int h = hash(b, off, len) & mask;
    while (true) {
      final byte[] s = slotIds[h];
      if (s == null) return -1;
      if (Arrays.equals(s, 0, s.length, b, off, off + len)) return slotIndex[h];
      h = (h + 1) & mask;
    }
  }

  private static int hash(byte[] b, int off, int len) {
    int h = 0x9747b28c;
    for (int i = off; i < off + len; i++) h = (h ^ b[i]) * 0x01000193;
    return h ^ (h >>> 16);
  }
}
