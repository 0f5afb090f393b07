package hubmetrics.kstreams;

import com.google.common.hash.HashFunction;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.common.header.internals.RecordHeaders;
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
import org.apache.kafka.streams.processor.api.RecordMetadata;
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
 *     -> decode (value serde) + event-time extractor
 *     -> check: future (wall clock), too_late (task stream time - lateness days)
 *     -> split: rejects -> DLQ topic (original bytes, reason header)
 *               accepted -> key "model|YYYY-Www", value = SipHash(user) + day
 *     -> repartition "by-model-week" (the only repartition: the key fixes model and week, and so
 *        the (model, user, day) triple lands on one task)
 *     -> dedup: persistent RocksDB window store, 1-day windows, retention = lateness + 2 days (TTL)
 *     -> groupByKey().count() into the persistent KTable store "weekly-counts" (ISO week)
 *     -> optional output topic of the weekly counts
 * </pre>
 */
final class HubTopology {
  static final String DEDUP_STORE = "dedup-store";
  static final String WEEKLY_STORE = "weekly-counts";
  static final String REPARTITION = "by-model-week";
  private static final byte[] SEEN = {1};

  /** Counters the benchmark reports; Kafka Streams' metrics would do in production. */
  static final class Counters {
    /** Accepted upstream but older than the dedup store still guarantees; expected 0. */
    final AtomicLong lateAtDedup = new AtomicLong();
  }

  private HubTopology() {}

  static Topology build(Config config, HashFunction userHash, Counters counters) {
    final StreamsBuilder builder = new StreamsBuilder();
    final KStream<byte[], ParsedEvent> checked =
        builder
            .stream(
                config.topic,
                Consumed.with(Serdes.ByteArray(), Serdes.serdeFrom((topic, e) -> e.raw, new ParsedEvent.Decoder()))
                    .withTimestampExtractor(new EventTimeExtractor(config.maxFutureSkewMs))
                    .withName("events"))
            .processValues(() -> new CheckProcessor(config), Named.as("check"));
    checked
        .split(Named.as("split-"))
        .branch(
            (k, e) -> !e.ok(),
            Branched.withConsumer(
                rejects ->
                    rejects
                        .processValues(DlqProcessor::new, Named.as("dead-letter"))
                        .to(
                            config.dlqTopic,
                            Produced.with(Serdes.ByteArray(), Serdes.ByteArray())
                                .withName("dlq-sink")),
                "rejected"))
        .defaultBranch(
            Branched.withConsumer(
                accepted -> countWeekly(accepted, config, userHash, counters), "accepted"));
    return builder.build(config.streamsProperties());
  }

  private static void countWeekly(
      KStream<byte[], ParsedEvent> accepted,
      Config config,
      HashFunction userHash,
      Counters counters) {
    final KTable<String, Long> weekly =
        accepted
            .map(
                (k, e) -> {
                  final long day = e.day();
                  final long hash =
                      userHash.hashBytes(e.userId.getBytes(StandardCharsets.UTF_8)).asLong();
                  final byte[] v = ByteBuffer.allocate(12).putLong(hash).putInt((int) day).array();
                  return KeyValue.pair(e.modelId + "|" + ParsedEvent.isoWeek(day), v);
                },
                Named.as("hash-and-key"))
            .repartition(
                Repartitioned.with(Serdes.String(), Serdes.ByteArray()).withName(REPARTITION))
            .processValues(new DedupSupplier(config, counters), Named.as("dedup"))
            .groupByKey(Grouped.with(Serdes.String(), Serdes.ByteArray()))
            .count(
                Named.as("weekly-count"),
                Materialized.<String, Long, KeyValueStore<Bytes, byte[]>>as(WEEKLY_STORE)
                    .withKeySerde(Serdes.String())
                    .withValueSerde(Serdes.Long()));
    // Without an output topic the counts stay in their store (read at the end through
    // interactive queries, as hubmetricsd's are read through its gRPC API).
    config.outputTopic.ifPresent(
        topic ->
            weekly
                .toStream(Named.as("weekly-changes"))
                .to(topic, Produced.with(Serdes.String(), Serdes.Long()).withName("weekly-sink")));
  }

  /** Rejects future events (wall clock) and too_late ones (task stream time). */
  static final class CheckProcessor implements FixedKeyProcessor<byte[], ParsedEvent, ParsedEvent> {
    private final long latenessDays;
    private final long maxFutureSkewMs;
    private FixedKeyProcessorContext<byte[], ParsedEvent> context;

    CheckProcessor(Config config) {
      this.latenessDays = config.latenessDays;
      this.maxFutureSkewMs = config.maxFutureSkewMs;
    }

    @Override
    public void init(FixedKeyProcessorContext<byte[], ParsedEvent> context) {
      this.context = context;
    }

    @Override
    public void process(FixedKeyRecord<byte[], ParsedEvent> record) {
      final ParsedEvent e = record.value();
      if (e.ok()) {
        // Exact comparison with hubmetricsd's "time > now + skew", sub-millisecond included.
        final long limit = System.currentTimeMillis() + maxFutureSkewMs;
        final long t = e.timeMs();
        if (t > limit || (t == limit && e.nanos % 1_000_000 != 0)) {
          e.reject("future", "event time more than the future skew ahead of the wall clock");
        } else {
          final long streamDay = Math.floorDiv(context.currentStreamTimeMs(), ParsedEvent.DAY_MS);
          if (e.day() < streamDay - latenessDays) {
            e.reject("too_late", "event day more than lateness_days before stream time's day");
          }
        }
      }
      context.forward(record);
    }
  }

  /** The DLQ copy: the original bytes and timestamp, with hubmetricsd's headers. */
  static final class DlqProcessor implements FixedKeyProcessor<byte[], ParsedEvent, byte[]> {
    private FixedKeyProcessorContext<byte[], byte[]> context;

    @Override
    public void init(FixedKeyProcessorContext<byte[], byte[]> context) {
      this.context = context;
    }

    @Override
    public void process(FixedKeyRecord<byte[], ParsedEvent> record) {
      final ParsedEvent e = record.value();
      final RecordHeaders headers = new RecordHeaders(record.headers().toArray());
      headers.add("reason", e.reason.getBytes(StandardCharsets.UTF_8));
      headers.add("detail", e.detail.getBytes(StandardCharsets.UTF_8));
      final Optional<RecordMetadata> m = context.recordMetadata();
      if (m.isPresent()) {
        headers.add("source_topic", m.get().topic().getBytes(StandardCharsets.UTF_8));
        headers.add(
            "source_partition",
            Integer.toString(m.get().partition()).getBytes(StandardCharsets.UTF_8));
        headers.add(
            "source_offset", Long.toString(m.get().offset()).getBytes(StandardCharsets.UTF_8));
      }
      final long ts = e.originalTimestamp >= 0 ? e.originalTimestamp : record.timestamp();
      context.forward(record.withValue(e.raw).withHeaders(headers).withTimestamp(ts));
    }
  }

  /**
   * Dedup per (model, user hash, UTC day) in a persistent window store: one-day windows keyed by
   * (model|week, user hash), retention lateness_days + 2 days, so old days expire segment by
   * segment as stream time moves on (the TTL). Forwards only the first event of a triple.
   */
  static final class DedupSupplier implements FixedKeyProcessorSupplier<String, byte[], byte[]> {
    private final Config config;
    private final Counters counters;

    DedupSupplier(Config config, Counters counters) {
      this.config = config;
      this.counters = counters;
    }

    @Override
    public FixedKeyProcessor<String, byte[], byte[]> get() {
      return new Dedup(config.latenessDays, counters);
    }

    @Override
    public Set<StoreBuilder<?>> stores() {
      final Duration retention = Duration.ofDays(config.latenessDays + 2);
      final StoreBuilder<WindowStore<Bytes, byte[]>> store =
          Stores.windowStoreBuilder(
              Stores.persistentWindowStore(DEDUP_STORE, retention, Duration.ofDays(1), false),
              Serdes.Bytes(),
              Serdes.ByteArray());
      return Set.of(config.dedupCache ? store.withCachingEnabled() : store);
    }
  }

  static final class Dedup implements FixedKeyProcessor<String, byte[], byte[]> {
    private final long latenessDays;
    private final Counters counters;
    private FixedKeyProcessorContext<String, byte[]> context;
    private WindowStore<Bytes, byte[]> store;

    Dedup(long latenessDays, Counters counters) {
      this.latenessDays = latenessDays;
      this.counters = counters;
    }

    @Override
    public void init(FixedKeyProcessorContext<String, byte[]> context) {
      this.context = context;
      this.store = context.getStateStore(DEDUP_STORE);
    }

    @Override
    public void process(FixedKeyRecord<String, byte[]> record) {
      final byte[] v = record.value();
      final long day = ByteBuffer.wrap(v, 8, 4).getInt();
      final long streamDay = Math.floorDiv(context.currentStreamTimeMs(), ParsedEvent.DAY_MS);
      if (day < streamDay - latenessDays - 1) {
        // The store may have expired this day already: counting it could double count.
        counters.lateAtDedup.incrementAndGet();
        return;
      }
      final byte[] modelWeek = record.key().getBytes(StandardCharsets.UTF_8);
      final byte[] key = new byte[modelWeek.length + 8];
      System.arraycopy(v, 0, key, 0, 8);
      System.arraycopy(modelWeek, 0, key, 8, modelWeek.length);
      final Bytes k = Bytes.wrap(key);
      final long windowStart = day * ParsedEvent.DAY_MS;
      if (store.fetch(k, windowStart) != null) return; // a duplicate
      store.put(k, SEEN, windowStart);
      context.forward(record);
    }
  }
}
