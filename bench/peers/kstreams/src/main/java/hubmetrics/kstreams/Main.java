package hubmetrics.kstreams;

import com.google.common.hash.HashFunction;
import com.google.common.hash.Hashing;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StoreQueryParameters;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.TopologyDescription;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.QueryableStoreTypes;
import org.apache.kafka.streams.state.ReadOnlyKeyValueStore;

/**
 * Runs the Kafka Streams peer. Service mode (default) runs until SIGTERM/SIGINT. Benchmark mode
 * (--exit_when_caught_up) polls every 200 ms until the application has fully processed its input
 * (see CaughtUpCheck), takes the JVM's CPU seconds and peak RSS at that moment, reads the weekly
 * counts from the store (interactive queries) and the dead letters from the DLQ, prints one JSON
 * object on stdout, closes, deletes the application's topics unless --keep_topics, and exits 0.
 */
public final class Main {
  private Main() {}

  private static final String DEDUP_LATE = "event day older than the dedup store keeps";

  public static void main(String[] args) throws Exception {
    final Config config;
    try {
      config = Config.parse(args);
    } catch (IllegalArgumentException e) {
      System.err.println(e.getMessage());
      System.exit(2);
      return;
    }
    if (config.checkDecoders > 0) {
      System.exit(DecoderCheck.run(config.checkDecoders, 1));
      return;
    }
    final HashFunction userHash = Hashing.sipHash24(loadKey(config, 0), loadKey(config, 8));
    // Read before the clock's "caught up" but after process start: part of the timed run, as
    // hubmetricsd's catalog load is part of its.
    final ModelIndex modelIndex =
        config.modelIndex
            ? ModelIndex.load(config.brokers, config.modelsTopic, Duration.ofSeconds(120))
            : null;
    if (modelIndex != null) {
      System.err.println("hubmetrics-kstreams: " + modelIndex.size() + " models in the index");
    }
    final KeyCodec<?> codec = KeyCodec.of(config, modelIndex);
    final Topology topology = HubTopology.build(config, userHash, codec);
    final TopologyDescription description = topology.describe();
    if (config.printTopology) System.err.println(description);
    createTopicIfMissing(config, config.dlqTopic);
    config.outputTopic.ifPresent(t -> createTopicIfMissing(config, t));

    final KafkaStreams streams = new KafkaStreams(topology, config.streamsProperties());
    final CountDownLatch failed = new CountDownLatch(1);
    streams.setUncaughtExceptionHandler(
        e -> {
          System.err.println("hubmetrics-kstreams: stream thread failed: " + e);
          failed.countDown();
          return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler
              .StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
    streams.setStateListener(
        (now, before) -> {
          if (now == KafkaStreams.State.ERROR) failed.countDown();
        });

    if (!config.exitWhenCaughtUp) {
      final CountDownLatch stop = new CountDownLatch(1);
      Runtime.getRuntime().addShutdownHook(new Thread(() -> {
        streams.close(Duration.ofSeconds(30));
        stop.countDown();
      }));
      streams.start();
      System.err.println("hubmetrics-kstreams: running as " + config.applicationId);
      while (!stop.await(1, TimeUnit.SECONDS)) {
        if (failed.getCount() == 0) System.exit(1);
      }
      return;
    }
    System.exit(runBenchmark(config, streams, description, failed, codec));
  }

  private static int runBenchmark(
      Config config,
      KafkaStreams streams,
      TopologyDescription description,
      CountDownLatch failed,
      KeyCodec<?> codec)
      throws Exception {
    final long start =
        config.startEpochMs > 0
            ? config.startEpochMs
            : java.lang.management.ManagementFactory.getRuntimeMXBean().getStartTime();
    final long deadline = start + config.timeoutS * 1000L;
    final List<String> topics = new ArrayList<>();
    topics.add(config.topic);
    topics.addAll(repartitionTopics(config, description));
    if (groupHasOffsets(config)) {
      System.err.println(
          "hubmetrics-kstreams: group " + config.applicationId + " already has committed offsets;"
              + " a benchmark needs a fresh --application_id");
      return 2;
    }
    streams.start();
    long doneMs;
    ProcStats stats;
    try (CaughtUpCheck check = new CaughtUpCheck(config.brokers, config.applicationId, topics)) {
      long lastLog = System.currentTimeMillis();
      while (true) {
        if (failed.getCount() == 0) {
          streams.close(Duration.ofSeconds(10));
          return 1;
        }
        if (System.currentTimeMillis() > deadline) {
          System.err.println("hubmetrics-kstreams: timeout, " + check.lastStatus);
          streams.close(Duration.ofSeconds(10));
          return 3;
        }
        if (streams.state() == KafkaStreams.State.RUNNING && check.caughtUp()) break;
        if (System.currentTimeMillis() - lastLog > 5000) {
          lastLog = System.currentTimeMillis();
          System.err.println(
              "hubmetrics-kstreams: " + streams.state() + ", " + check.lastStatus);
        }
        Thread.sleep(200);
      }
      doneMs = System.currentTimeMillis();
      stats = ProcStats.read(config.clkTck);
      System.err.println("hubmetrics-kstreams: caught up: " + check.lastStatus);
    }

    // Results: the weekly counts through interactive queries, the rejects from the DLQ.
    final TreeMap<String, Long> weekly = readWeekly(streams, codec);
    long unique = 0;
    for (long v : weekly.values()) unique += v;
    final Map<String, Long> rejects = countDeadLetters(config);
    long rejected = 0;
    for (long v : rejects.values()) rejected += v;
    final long lateAtDedup = rejects.getOrDefault("too_late_at_dedup", 0L);
    if (lateAtDedup > 0) {
      rejects.remove("too_late_at_dedup");
      rejects.merge("too_late", lateAtDedup, Long::sum);
    }
    if (config.dumpWeekly != null) {
      try (PrintWriter w = new PrintWriter(Files.newBufferedWriter(Path.of(config.dumpWeekly)))) {
        for (Map.Entry<String, Long> e : weekly.entrySet()) {
          final int bar = e.getKey().lastIndexOf('|');
          w.printf(
              "{\"model_id\":\"%s\",\"week\":\"%s\",\"count\":%d}%n",
              jsonEscape(e.getKey().substring(0, bar)), e.getKey().substring(bar + 1), e.getValue());
        }
      }
    }
    streams.close(Duration.ofSeconds(30));
    if (!config.keepTopics) deleteApplicationTopics(config);

    final double seconds = (doneMs - start) / 1000.0;
    final long events = config.events;
    System.out.printf(
        "{\"peer\":\"kstreams\",\"events\":%d,\"seconds\":%.3f,\"events_per_sec\":%.0f,"
            + "\"cpu_seconds\":%.2f,\"peak_rss_mb\":%.1f,\"unique_downloads\":%d,\"rejected\":%d,"
            + "\"rejected_by_reason\":{%s},\"too_late_at_dedup\":%d,\"weekly_rows\":%d,"
            + "\"config\":%s,\"jvm_args\":\"%s\",\"java_version\":\"%s\"}%n",
        events,
        seconds,
        events > 0 ? events / seconds : 0.0,
        stats.cpuSeconds,
        stats.peakRssMb,
        unique,
        rejected,
        rejects.entrySet().stream()
            .map(e -> "\"" + e.getKey() + "\":" + e.getValue())
            .collect(Collectors.joining(",")),
        lateAtDedup,
        weekly.size(),
        config.knobsJson(),
        jsonEscape(
            String.join(
                " ",
                java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())),
        jsonEscape(System.getProperty("java.vm.name") + " " + System.getProperty("java.runtime.version")));
    System.out.flush();
    return 0;
  }

  /** The weekly counts of the store (interactive query), keyed "model|YYYY-Www". */
  private static <K> TreeMap<String, Long> readWeekly(KafkaStreams streams, KeyCodec<K> codec) {
    final TreeMap<String, Long> weekly = new TreeMap<>();
    final ReadOnlyKeyValueStore<K, Long> store =
        streams.store(
            StoreQueryParameters.fromNameAndType(
                HubTopology.WEEKLY_STORE, QueryableStoreTypes.<K, Long>keyValueStore()));
    try (KeyValueIterator<K, Long> it = store.all()) {
      while (it.hasNext()) {
        final KeyValue<K, Long> kv = it.next();
        weekly.merge(codec.model(kv.key) + "|" + codec.week(kv.key), kv.value, Long::sum);
      }
    }
    return weekly;
  }

  private static boolean groupHasOffsets(Config config) throws Exception {
    final Properties p = new Properties();
    p.put("bootstrap.servers", config.brokers);
    try (Admin admin = Admin.create(p)) {
      return !admin
          .listConsumerGroupOffsets(config.applicationId)
          .partitionsToOffsetAndMetadata()
          .get(60, TimeUnit.SECONDS)
          .isEmpty();
    }
  }

  /** The internal topics the application reads: its source topics other than the input. */
  private static List<String> repartitionTopics(Config config, TopologyDescription d) {
    final List<String> out = new ArrayList<>();
    for (TopologyDescription.Subtopology s : d.subtopologies()) {
      for (TopologyDescription.Node n : s.nodes()) {
        if (n instanceof TopologyDescription.Source src && src.topicSet() != null) {
          for (String t : src.topicSet()) {
            if (!t.equals(config.topic)) out.add(config.applicationId + "-" + t);
          }
        }
      }
    }
    return out;
  }

  /** Dead letters per reason header, read_committed from the start of the DLQ to its end. */
  private static Map<String, Long> countDeadLetters(Config config) {
    final Properties c = new Properties();
    c.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, config.brokers);
    c.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
    c.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    final TreeMap<String, Long> counts = new TreeMap<>();
    try (KafkaConsumer<byte[], byte[]> consumer =
        new KafkaConsumer<>(c, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
      final List<TopicPartition> tps =
          consumer.partitionsFor(config.dlqTopic).stream()
              .map(p -> new TopicPartition(p.topic(), p.partition()))
              .collect(Collectors.toList());
      consumer.assign(tps);
      consumer.seekToBeginning(tps);
      final Map<TopicPartition, Long> end = consumer.endOffsets(tps);
      final long deadline = System.currentTimeMillis() + 120_000;
      while (tps.stream().anyMatch(tp -> consumer.position(tp) < end.get(tp))) {
        if (System.currentTimeMillis() > deadline) throw new IllegalStateException("DLQ read timed out");
        for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
          final Header h = r.headers().lastHeader("reason");
          String reason = h == null ? "none" : new String(h.value(), StandardCharsets.UTF_8);
          final Header d = r.headers().lastHeader("detail");
          if (d != null && new String(d.value(), StandardCharsets.UTF_8).startsWith(DEDUP_LATE)) {
            reason = "too_late_at_dedup"; // a subset of too_late, shown apart
          }
          counts.merge(reason, 1L, Long::sum);
        }
      }
    }
    return counts;
  }

  private static void createTopicIfMissing(Config config, String topic) {
    final Properties p = new Properties();
    p.put("bootstrap.servers", config.brokers);
    try (Admin admin = Admin.create(p)) {
      admin
          .createTopics(List.of(new NewTopic(topic, Optional.empty(), Optional.empty())))
          .all()
          .get(60, TimeUnit.SECONDS);
    } catch (java.util.concurrent.ExecutionException e) {
      if (!(e.getCause() instanceof TopicExistsException)) throw new IllegalStateException(e);
    } catch (Exception e) {
      throw new IllegalStateException("cannot create topic " + topic + ": " + e, e);
    }
  }

  /**
   * The application's internal topics and its DLQ (all named <application_id>-...). Its consumer
   * group stays until its members' sessions expire (Kafka Streams members do not leave the group
   * on close); an empty group's offsets expire by themselves.
   */
  private static void deleteApplicationTopics(Config config) {
    final Properties p = new Properties();
    p.put("bootstrap.servers", config.brokers);
    try (Admin admin = Admin.create(p)) {
      final Set<String> mine =
          admin.listTopics().names().get(60, TimeUnit.SECONDS).stream()
              .filter(t -> t.startsWith(config.applicationId + "-"))
              .collect(Collectors.toSet());
      admin.deleteTopics(mine).all().get(60, TimeUnit.SECONDS);
    } catch (Exception e) {
      System.err.println("hubmetrics-kstreams: could not delete the application's topics: " + e);
    }
  }

  /**
   * 8 bytes (little endian, as SipHash's reference key layout) of the 128-bit user hash key, from
   * a file of 32 hex digits like hubmetricsd's; created with a random key, mode 0600, if missing.
   */
  private static long loadKey(Config config, int offset) throws IOException {
    final Path path = Path.of(config.userHashKeyFile);
    if (!Files.exists(path)) {
      Files.createDirectories(path.toAbsolutePath().getParent());
      final byte[] k = new byte[16];
      new SecureRandom().nextBytes(k);
      try {
        Files.createFile(path, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
        Files.writeString(path, HexFormat.of().formatHex(k) + "\n");
      } catch (FileAlreadyExistsException e) {
        // Another process created it first: use theirs.
      }
    }
    final String hex = Files.readString(path).trim();
    if (!hex.matches("[0-9a-fA-F]{32}")) {
      throw new IllegalArgumentException(path + ": expected 32 hex digits");
    }
    final byte[] key = HexFormat.of().parseHex(hex);
    return ByteBuffer.wrap(key, offset, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
  }

  private static String jsonEscape(String s) {
    final StringBuilder b = new StringBuilder();
    for (char ch : s.toCharArray()) {
      if (ch == '"' || ch == '\\') b.append('\\').append(ch);
      else if (ch < 0x20) b.append(String.format("\\u%04x", (int) ch));
      else b.append(ch);
    }
    return b.toString();
  }
}
