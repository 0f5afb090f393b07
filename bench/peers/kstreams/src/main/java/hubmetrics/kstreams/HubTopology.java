package hubmetrics.kstreams;

import com.google.common.hash.HashFunction;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Arrays;
import java.util.Set;
import org.apache.kafka.common.header.Headers;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.kstream.Branched;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Named;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Repartitioned;
import org.apache.kafka.streams.processor.api.FixedKeyProcessor;
import org.apache.kafka.streams.processor.api.FixedKeyProcessorContext;
import org.apache.kafka.streams.processor.api.FixedKeyProcessorSupplier;
import org.apache.kafka.streams.processor.api.FixedKeyRecord;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.StoreBuilder;
import org.apache.kafka.streams.state.Stores;
import org.apache.kafka.streams.state.WindowStore;

/**
 * The topology: the same job as hubmetricsd's ingest (decode, validate, hash, dedup per (model,
 * user, UTC day), weekly unique counts per model), written the way Kafka Streams is meant to be
 * used.
 *
 * <pre>
 *   input (unkeyed, binary DownloadEvent)
 *     -> decode (value deserializer) + event-time timestamp extractor
 *     -> check: future (wall clock), too_late (day before the stream-time day of the input
 *        partition's task minus lateness_days)  -> rejects: DLQ (original bytes, reason header)
 *     -> key (model, ISO week) (KeyCodec: "model|YYYY-Www" or bytes), value = SipHash(user),
 *        day (and, unless --repartition_value=slim, source partition/offset, original bytes)
 *     -> repartition "by-model-week" (the only one: model and week fix the task of a
 *        (model, user, day) triple, so dedup and the weekly count share it)
 *     -> dedup: a persistent RocksDB window store of 1-day windows with retention lateness_days +
 *        skew_days + 1 days (the TTL); forwards the first event of a triple only
 *     -> groupByKey().count(): persistent KTable store "weekly-counts" (optional output topic)
 * </pre>
 *
 * <p>Stream time is per task in Kafka Streams, and the input partitions are read at different
 * paces, so the dedup tasks (fed by every input partition) see event times up to that skew apart.
 * too_late is therefore decided per input partition, where event time is in order and the verdict
 * does not depend on how fast each partition is read; the dedup store keeps skew_days more so
 * that whatever was accepted upstream still finds its day. An event older than the store still
 * guarantees (input partitions more than skew_days apart) is rejected there as too_late too,
 * rather than risk counting it twice.
 */
final class HubTopology {
  static final String DEDUP_STORE = "dedup-store";
  static final String WEEKLY_STORE = "weekly-counts";
  static final String REPARTITION = "by-model-week";
  private static final byte[] SEEN = {1};
  // Repartition value: user hash (8), day (4), source partition (4), source offset (8), bytes;
  // with --repartition_value=slim the first two only.
  private static final int HEADER_BYTES = 24;
  private static final int SLIM_BYTES = 12;

  private HubTopology() {}

  static <K> Topology build(Config config, HashFunction userHash, KeyCodec<K> codec) {
    final StreamsBuilder builder = new StreamsBuilder();
    final Serde<ParsedEvent> parsed =
        Serdes.serdeFrom((topic, e) -> e.raw, new ParsedEvent.Decoder(config.rawDecode()));
    final KStream<byte[], ParsedEvent> checked =
        builder
            .stream(
                config.topic,
                Consumed.with(Serdes.ByteArray(), parsed)
                    .withTimestampExtractor(new EventTimeExtractor(config.maxFutureSkewMs))
                    .withName("events"))
            .processValues(() -> new CheckProcessor(config), Named.as("check"));
    checked
        .split(Named.as("decoded-"))
        .branch(
            (k, e) -> !e.ok(),
            Branched.withConsumer(
                rejects ->
                    rejects
                        .processValues(SourceDeadLetter::new, Named.as("source-dead-letter"))
                        .to(config.dlqTopic, dlqProduced("source-dlq-sink")),
                "rejected"))
        .defaultBranch(
            Branched.withConsumer(
                accepted -> dedupAndCount(accepted, config, userHash, codec), "ok"));
    return builder.build(config.streamsProperties());
  }

  private static Produced<byte[], byte[]> dlqProduced(String name) {
    return Produced.with(Serdes.ByteArray(), Serdes.ByteArray()).withName(name);
  }

  /**
   * The repartition value: user hash (8), day (4), and with --repartition_value=raw also the
   * source partition (4) and offset (8) and the original bytes, for the DLQ copy of an event
   * rejected at dedup.
   */
  private static byte[] repartitionValue(ParsedEvent e, long day, long hash, boolean slim) {
    if (slim) return ByteBuffer.allocate(SLIM_BYTES).putLong(hash).putInt((int) day).array();
    return ByteBuffer.allocate(HEADER_BYTES + e.raw.length)
        .putLong(hash)
        .putInt((int) day)
        .putInt(e.sourcePartition)
        .putLong(e.sourceOffset)
        .put(e.raw)
        .array();
  }

  private static <K> void dedupAndCount(
      KStream<byte[], ParsedEvent> accepted,
      Config config,
      HashFunction userHash,
      KeyCodec<K> codec) {
    final Serde<DedupOut> dedupOut =
        Serdes.serdeFrom((topic, o) -> o.value, (topic, b) -> new DedupOut(b, false));
    final boolean slim = config.slim();
    final KStream<K, DedupOut> deduped =
        accepted
            .map(
                (k, e) -> {
                  final long day = e.day();
                  final byte[] v = repartitionValue(e, day, e.userHash(userHash), slim);
                  return KeyValue.pair(codec.key(e, day), v);
                },
                Named.as("hash-and-key"))
            .repartition(
                Repartitioned.with(codec.serde(), Serdes.ByteArray()).withName(REPARTITION))
            .processValues(new DedupSupplier<>(config, codec), Named.as("dedup"));
    final Serde<K> noKey = Serdes.serdeFrom((String t, K k) -> null, (String t, byte[] b) -> null);
    deduped
        .split(Named.as("dedup-"))
        .branch(
            (k, o) -> o.tooLate,
            Branched.withConsumer(
                late ->
                    late.processValues(
                            () -> new LateDeadLetter<K>(config.topic, slim),
                            Named.as("late-dead-letter"))
                        // Unkeyed, like the input and the other dead letters.
                        .to(
                            config.dlqTopic,
                            Produced.with(noKey, Serdes.ByteArray()).withName("late-dlq-sink")),
                "too-late"))
        .defaultBranch(
            Branched.withConsumer(
                unique -> {
                  final KTable<K, Long> weekly =
                      unique
                          .groupByKey(Grouped.with(codec.serde(), dedupOut))
                          .count(
                              Named.as("weekly-count"),
                              Materialized.<K, Long, KeyValueStore<Bytes, byte[]>>as(WEEKLY_STORE)
                                  .withKeySerde(codec.serde())
                                  .withValueSerde(Serdes.Long()));
                  // Without an output topic the counts stay in their store (read at the end
                  // through interactive queries, as hubmetricsd's are read through gRPC).
                  config.outputTopic.ifPresent(
                      topic ->
                          weekly
                              .toStream(Named.as("weekly-changes"))
                              .to(
                                  topic,
                                  Produced.with(codec.serde(), Serdes.Long())
                                      .withName("weekly-sink")));
                },
                "unique"));
  }

  /** Rejects future (wall clock) and too_late (partition stream time) events; notes sources. */
  static final class CheckProcessor implements FixedKeyProcessor<byte[], ParsedEvent, ParsedEvent> {
    private final long maxFutureSkewMs;
    private final long latenessDays;
    private FixedKeyProcessorContext<byte[], ParsedEvent> context;

    CheckProcessor(Config config) {
      this.maxFutureSkewMs = config.maxFutureSkewMs;
      this.latenessDays = config.latenessDays;
    }

    @Override
    public void init(FixedKeyProcessorContext<byte[], ParsedEvent> context) {
      this.context = context;
    }

    @Override
    public void process(FixedKeyRecord<byte[], ParsedEvent> record) {
      final ParsedEvent e = record.value();
      context
          .recordMetadata()
          .ifPresent(
              m -> {
                e.sourcePartition = m.partition();
                e.sourceOffset = m.offset();
              });
      if (e.ok()) {
        // hubmetricsd's "time > now + skew", exact to the nanosecond.
        final long limit = System.currentTimeMillis() + maxFutureSkewMs;
        final long t = e.timeMs();
        if (t > limit || (t == limit && e.nanos % 1_000_000 != 0)) {
          e.reject("future", "event time more than the future skew ahead of the wall clock");
        } else {
          // Stream time includes this record's own time (the extractor gave it), so an event
          // that moves it forward is never too late.
          final long streamDay = Math.floorDiv(context.currentStreamTimeMs(), ParsedEvent.DAY_MS);
          if (e.day() < streamDay - latenessDays) {
            e.reject("too_late", "event day more than lateness_days before stream time's day");
          }
        }
      }
      context.forward(record);
    }
  }

  private static Headers deadLetterHeaders(
      Headers original, String reason, String detail, String topic, int partition, long offset) {
    final RecordHeaders h = new RecordHeaders(original.toArray());
    h.add("reason", reason.getBytes(StandardCharsets.UTF_8));
    h.add("detail", detail.getBytes(StandardCharsets.UTF_8));
    h.add("source_topic", topic.getBytes(StandardCharsets.UTF_8));
    h.add("source_partition", Integer.toString(partition).getBytes(StandardCharsets.UTF_8));
    h.add("source_offset", Long.toString(offset).getBytes(StandardCharsets.UTF_8));
    return h;
  }

  /** The DLQ copy of a record rejected on decoding: original bytes and timestamp, headers. */
  static final class SourceDeadLetter implements FixedKeyProcessor<byte[], ParsedEvent, byte[]> {
    private FixedKeyProcessorContext<byte[], byte[]> context;

    @Override
    public void init(FixedKeyProcessorContext<byte[], byte[]> context) {
      this.context = context;
    }

    @Override
    public void process(FixedKeyRecord<byte[], ParsedEvent> record) {
      final ParsedEvent e = record.value();
      final String topic = context.recordMetadata().map(m -> m.topic()).orElse("");
      final Headers h =
          deadLetterHeaders(
              record.headers(), e.reason, e.detail, topic, e.sourcePartition, e.sourceOffset);
      final long ts = e.originalTimestamp >= 0 ? e.originalTimestamp : record.timestamp();
      context.forward(record.withValue(e.raw).withHeaders(h).withTimestamp(ts));
    }
  }

  /**
   * The DLQ copy of a too_late event: its original bytes from the repartition value (an empty
   * value and source position -1 with --repartition_value=slim, which does not carry them).
   */
  static final class LateDeadLetter<K> implements FixedKeyProcessor<K, DedupOut, byte[]> {
    private final String sourceTopic;
    private final boolean slim;
    private FixedKeyProcessorContext<K, byte[]> context;

    LateDeadLetter(String sourceTopic, boolean slim) {
      this.sourceTopic = sourceTopic;
      this.slim = slim;
    }

    @Override
    public void init(FixedKeyProcessorContext<K, byte[]> context) {
      this.context = context;
    }

    @Override
    public void process(FixedKeyRecord<K, DedupOut> record) {
      final byte[] v = record.value().value;
      final ByteBuffer b = ByteBuffer.wrap(v);
      final Headers h =
          deadLetterHeaders(
              record.headers(),
              "too_late",
              "event day older than the dedup store keeps (input partitions too far apart)",
              sourceTopic,
              slim ? -1 : b.getInt(12),
              slim ? -1 : b.getLong(16));
      final byte[] original = slim ? new byte[0] : Arrays.copyOfRange(v, HEADER_BYTES, v.length);
      context.forward(record.withValue(original).withHeaders(h));
    }
  }

  /** What the dedup step forwards: a first (model, user, day), or a too_late event. */
  static final class DedupOut {
    final byte[] value;
    final boolean tooLate;

    DedupOut(byte[] value, boolean tooLate) {
      this.value = value;
      this.tooLate = tooLate;
    }
  }

  static final class DedupSupplier<K> implements FixedKeyProcessorSupplier<K, byte[], DedupOut> {
    private final Config config;
    private final KeyCodec<K> codec;

    DedupSupplier(Config config, KeyCodec<K> codec) {
      this.config = config;
      this.codec = codec;
    }

    @Override
    public FixedKeyProcessor<K, byte[], DedupOut> get() {
      return new Dedup<>(config.latenessDays + config.skewDays, codec);
    }

    @Override
    public Set<StoreBuilder<?>> stores() {
      final Duration retention = Duration.ofDays(config.latenessDays + config.skewDays + 2);
      final StoreBuilder<WindowStore<Bytes, byte[]>> store =
          Stores.windowStoreBuilder(
              Stores.persistentWindowStore(DEDUP_STORE, retention, Duration.ofDays(1), false),
              Serdes.Bytes(),
              Serdes.ByteArray());
      return Set.of(config.dedupCache ? store.withCachingEnabled() : store);
    }
  }

  /**
   * Dedup per (model, user hash, UTC day) in the window store: key (user hash, model and week
   * key bytes), window = the day. The retention keeps every day not older than keptDays before
   * the task's stream-time day; older segments are dropped as stream time moves on (the TTL). An
   * event older than that is forwarded as too_late.
   */
  static final class Dedup<K> implements FixedKeyProcessor<K, byte[], DedupOut> {
    private final long keptDays;
    private final KeyCodec<K> codec;
    private FixedKeyProcessorContext<K, DedupOut> context;
    private WindowStore<Bytes, byte[]> store;

    Dedup(long keptDays, KeyCodec<K> codec) {
      this.keptDays = keptDays;
      this.codec = codec;
    }

    @Override
    public void init(FixedKeyProcessorContext<K, DedupOut> context) {
      this.context = context;
      this.store = context.getStateStore(DEDUP_STORE);
    }

    @Override
    public void process(FixedKeyRecord<K, byte[]> record) {
      final byte[] v = record.value();
      final long day = ByteBuffer.wrap(v).getInt(8);
      final long streamDay = Math.floorDiv(context.currentStreamTimeMs(), ParsedEvent.DAY_MS);
      if (day < streamDay - keptDays) {
        context.forward(record.withValue(new DedupOut(v, true)));
        return;
      }
      final byte[] modelWeek = codec.bytes(record.key());
      final byte[] key = new byte[modelWeek.length + 8];
      System.arraycopy(v, 0, key, 0, 8);
      System.arraycopy(modelWeek, 0, key, 8, modelWeek.length);
      final Bytes k = Bytes.wrap(key);
      final long windowStart = day * ParsedEvent.DAY_MS;
      if (store.fetch(k, windowStart) != null) return; // a duplicate
      store.put(k, SEEN, windowStart);
      context.forward(record.withValue(new DedupOut(v, false)));
    }
  }
}
