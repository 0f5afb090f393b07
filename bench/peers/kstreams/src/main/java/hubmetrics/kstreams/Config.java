package hubmetrics.kstreams;

import java.util.HashMap;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.streams.StreamsConfig;

/** Command-line flags (--name=value) and the Kafka Streams configuration they give. */
final class Config {
  String brokers = "127.0.0.1:9092";
  String topic = "hub.downloads";
  String applicationId = "hubmetrics-kstreams";
  String stateDir = "/tmp/hubmetrics-kstreams";
  String dlqTopic; // default: <application_id>-dlq
  Optional<String> outputTopic = Optional.empty();
  String userHashKeyFile; // default: <state_dir>/user_hash.key
  long latenessDays = 3;
  // How far apart in event time the input partitions may be read: stream tasks are not kept in
  // step, and a backfill at full speed moves days in seconds.
  long skewDays = 30;
  long maxFutureSkewMs = 3_600_000L;
  int threads = 2;
  long cacheMb = 64;
  boolean dedupCache = false; // measured: the record cache costs CPU on mostly-new keys
  long commitIntervalMs = 100; // the exactly_once_v2 default, stated explicitly
  // Tuning knobs (README "Tuning"); the defaults are the peer as first written.
  // raw: the repartition value carries the whole input record (for the DLQ copy of a record
  // rejected at dedup); slim: user hash and day only (12 bytes).
  String repartitionValue = "raw";
  // string: key "model|YYYY-Www" (String serde); binary: the model id's bytes (or its catalog
  // index with --model_index) and the week's Monday as an int.
  String keys = "string";
  // proto: DownloadEvent.parseFrom (Java Strings for the ids, hashed from their UTF-8 bytes);
  // raw: a protobuf wire walker that keeps byte ranges and hashes the user id's bytes in place.
  String decode = "proto";
  // Binary keys carry a 4-byte index of the model in the catalog (read from --models_topic at
  // start) instead of its id; ids not in the catalog keep their bytes.
  boolean modelIndex = false;
  String modelsTopic; // default: <topic>.models
  // > 0: every RocksDB store shares one block cache of this size that also holds the memtables
  // (a WriteBufferManager), Kafka Streams' documented way to bound RocksDB's memory.
  long rocksdbMemoryMb = 0;
  // Benchmark mode: exit once the input is fully processed, print a JSON result.
  boolean exitWhenCaughtUp = false;
  long startEpochMs = -1;
  long timeoutS = 1800;
  long events = -1;
  int clkTck = 100;
  String dumpWeekly;
  boolean keepTopics = false;
  boolean printTopology = false;
  long checkDecoders = 0; // > 0: compare the two decoders on that many records and exit
  final Map<String, String> extra = new HashMap<>();

  static Config parse(String[] args) {
    final Config c = new Config();
    String dlq = null;
    String key = null;
    for (String a : args) {
      if (a.equals("--help") || a.equals("-h")) throw new IllegalArgumentException(USAGE);
      if (!a.startsWith("--")) throw new IllegalArgumentException("unexpected argument " + a);
      final int eq = a.indexOf('=');
      final String name = eq < 0 ? a.substring(2) : a.substring(2, eq);
      final String value = eq < 0 ? "true" : a.substring(eq + 1);
      switch (name) {
        case "brokers" -> c.brokers = value;
        case "topic" -> c.topic = value;
        case "application_id" -> c.applicationId = value;
        case "state_dir" -> c.stateDir = value;
        case "dlq_topic" -> dlq = value;
        case "output_topic" -> c.outputTopic = value.isEmpty() ? Optional.empty() : Optional.of(value);
        case "user_hash_key_file" -> key = value;
        case "lateness_days" -> c.latenessDays = Long.parseLong(value);
        case "skew_days" -> c.skewDays = Long.parseLong(value);
        case "max_future_skew_s" -> c.maxFutureSkewMs = Long.parseLong(value) * 1000L;
        case "threads" -> c.threads = Integer.parseInt(value);
        case "cache_mb" -> c.cacheMb = Long.parseLong(value);
        case "dedup_cache" -> c.dedupCache = Boolean.parseBoolean(value);
        case "commit_interval_ms" -> c.commitIntervalMs = Long.parseLong(value);
        case "repartition_value" -> c.repartitionValue = oneOf(name, value, "raw", "slim");
        case "keys" -> c.keys = oneOf(name, value, "string", "binary");
        case "decode" -> c.decode = oneOf(name, value, "proto", "raw");
        case "model_index" -> c.modelIndex = Boolean.parseBoolean(value);
        case "models_topic" -> c.modelsTopic = value;
        case "rocksdb_memory_mb" -> c.rocksdbMemoryMb = Long.parseLong(value);
        case "exit_when_caught_up" -> c.exitWhenCaughtUp = Boolean.parseBoolean(value);
        case "start_epoch_ms" -> c.startEpochMs = Long.parseLong(value);
        case "timeout_s" -> c.timeoutS = Long.parseLong(value);
        case "events" -> c.events = Long.parseLong(value);
        case "clk_tck" -> c.clkTck = Integer.parseInt(value);
        case "dump_weekly" -> c.dumpWeekly = value;
        case "keep_topics" -> c.keepTopics = Boolean.parseBoolean(value);
        case "print_topology" -> c.printTopology = Boolean.parseBoolean(value);
        case "check_decoders" -> c.checkDecoders = Long.parseLong(value);
        case "streams_property" -> {
          final int e2 = value.indexOf('=');
          if (e2 <= 0) throw new IllegalArgumentException("--streams_property wants key=value");
          c.extra.put(value.substring(0, e2), value.substring(e2 + 1));
        }
        default -> throw new IllegalArgumentException("unknown flag --" + name + "\n" + USAGE);
      }
    }
    c.dlqTopic = dlq != null ? dlq : c.applicationId + "-dlq";
    if (c.modelsTopic == null) c.modelsTopic = c.topic + ".models";
    if (c.modelIndex && !c.keys.equals("binary")) {
      throw new IllegalArgumentException("--model_index needs --keys=binary");
    }
    c.userHashKeyFile = key != null ? key : c.stateDir + "/user_hash.key";
    return c;
  }

  private static String oneOf(String name, String value, String... allowed) {
    for (String a : allowed) {
      if (a.equals(value)) return value;
    }
    throw new IllegalArgumentException(
        "--" + name + " must be one of " + String.join(", ", allowed) + ", not '" + value + "'");
  }

  boolean slim() {
    return repartitionValue.equals("slim");
  }

  boolean binaryKeys() {
    return keys.equals("binary");
  }

  boolean rawDecode() {
    return decode.equals("raw");
  }

  /** The knobs as a JSON object (the result line's "config"). */
  String knobsJson() {
    return String.format(
        "{\"commit_interval_ms\":%d,\"threads\":%d,\"repartition_value\":\"%s\",\"keys\":\"%s\","
            + "\"decode\":\"%s\",\"model_index\":%b,\"rocksdb_memory_mb\":%d,\"cache_mb\":%d}",
        commitIntervalMs, threads, repartitionValue, keys, decode, modelIndex, rocksdbMemoryMb,
        cacheMb);
  }

  /**
   * exactly_once_v2 and the settings tuned for throughput on a small machine; everything else is
   * Kafka Streams' default. --streams_property=key=value overrides any of them.
   */
  Properties streamsProperties() {
    final Properties p = new Properties();
    p.put(StreamsConfig.APPLICATION_ID_CONFIG, applicationId);
    p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, brokers);
    p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
    p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
    p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, threads);
    p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, commitIntervalMs);
    p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, cacheMb * 1024 * 1024);
    p.put(StreamsConfig.TOPOLOGY_OPTIMIZATION_CONFIG, StreamsConfig.OPTIMIZE);
    // Bigger batches, compressed, for the repartition, changelog and DLQ topics.
    p.put(StreamsConfig.producerPrefix(ProducerConfig.BATCH_SIZE_CONFIG), 256 * 1024);
    p.put(StreamsConfig.producerPrefix(ProducerConfig.COMPRESSION_TYPE_CONFIG), "lz4");
    // More records per poll (default 1000) for fewer, larger processing rounds.
    p.put(StreamsConfig.consumerPrefix(ConsumerConfig.MAX_POLL_RECORDS_CONFIG), 5000);
    p.put(
        StreamsConfig.consumerPrefix(ConsumerConfig.MAX_PARTITION_FETCH_BYTES_CONFIG),
        4 * 1024 * 1024);
    if (rocksdbMemoryMb > 0) {
      p.put(StreamsConfig.ROCKSDB_CONFIG_SETTER_CLASS_CONFIG, BoundedRocksDb.class);
      p.put(BoundedRocksDb.MEMORY_MB_CONFIG, rocksdbMemoryMb);
    }
    p.putAll(extra);
    return p;
  }

  static final String USAGE =
      """
      hubmetrics-kstreams: the Kafka Streams peer of hubmetricsd (see README.md).

        java -jar hubmetrics-kstreams.jar --brokers=HOST:PORT --topic=T [--application_id=ID]
            [--state_dir=DIR] [--dlq_topic=T] [--output_topic=T] [--user_hash_key_file=F]
            [--lateness_days=3] [--skew_days=30] [--max_future_skew_s=3600] [--threads=2] [--cache_mb=64]
            [--dedup_cache=false] [--commit_interval_ms=100] [--streams_property=k=v ...]
            [--repartition_value=raw|slim] [--keys=string|binary] [--decode=proto|raw]
            [--model_index [--models_topic=T]] [--rocksdb_memory_mb=0] [--print_topology]
        self-check: --check_decoders=N (decode and decode_raw agree on N fuzzed records)
        benchmark mode (used by ./run): --exit_when_caught_up [--start_epoch_ms=MS]
            [--events=N] [--timeout_s=1800] [--clk_tck=100] [--dump_weekly=FILE] [--keep_topics]
      """;
}
