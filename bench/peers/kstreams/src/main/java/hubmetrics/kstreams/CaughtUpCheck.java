package hubmetrics.kstreams;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ListConsumerGroupOffsetsOptions;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * Decides when the application has fully processed its input: the group's committed offsets
 * (stable, i.e. of committed transactions only) equal the end offsets of the input topic AND of
 * the internal repartition topics. Those are written in transactions, so their last offset can be
 * a commit marker that no consumer position reaches until its next fetch; a partition whose
 * committed offset is short of the end counts as done only if a read_committed consumer finds
 * nothing but markers between the two.
 */
final class CaughtUpCheck implements AutoCloseable {
  private final String groupId;
  private final List<String> topics;
  private final Admin admin;
  private final KafkaConsumer<byte[], byte[]> probe;
  private List<TopicPartition> partitions;

  CaughtUpCheck(String brokers, String groupId, List<String> topics) {
    this.groupId = groupId;
    this.topics = topics;
    final Properties p = new Properties();
    p.put("bootstrap.servers", brokers);
    p.put("client.id", groupId + "-caught-up-check");
    this.admin = Admin.create(p);
    final Properties c = new Properties();
    c.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, brokers);
    c.put(ConsumerConfig.CLIENT_ID_CONFIG, groupId + "-caught-up-probe");
    c.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
    c.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    c.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "1");
    this.probe = new KafkaConsumer<>(c, new ByteArrayDeserializer(), new ByteArrayDeserializer());
  }

  /** Input and repartition partitions, their end offsets (last stable) and committed offsets. */
  String lastStatus = "";

  boolean caughtUp() throws InterruptedException, ExecutionException {
    if (partitions == null) {
      final List<TopicPartition> all = new ArrayList<>();
      for (TopicDescription d : admin.describeTopics(topics).allTopicNames().get().values()) {
        d.partitions().forEach(i -> all.add(new TopicPartition(d.name(), i.partition())));
      }
      partitions = all;
    }
    // Committed offsets first, end offsets second: everything the committed input offsets
    // produced into the repartition topics is then below the end offsets read.
    final Map<TopicPartition, OffsetAndMetadata> committed =
        admin
            .listConsumerGroupOffsets(
                groupId, new ListConsumerGroupOffsetsOptions().requireStable(true))
            .partitionsToOffsetAndMetadata()
            .get();
    final Map<TopicPartition, Long> end = probe.endOffsets(partitions, Duration.ofSeconds(10));
    long lag = 0;
    final Map<TopicPartition, Long> behind = new HashMap<>();
    for (TopicPartition tp : partitions) {
      final long e = end.get(tp);
      final OffsetAndMetadata c = committed.get(tp);
      final long pos = c == null ? 0 : c.offset();
      if (pos < e) {
        lag += e - pos;
        behind.put(tp, pos);
      }
    }
    lastStatus = "lag " + lag + " over " + behind.size() + " partitions";
    if (behind.isEmpty()) return true;
    if (lag > 4L * behind.size()) return false;
    // Only a few offsets short: are they transaction markers only?
    for (Map.Entry<TopicPartition, Long> b : behind.entrySet()) {
      final TopicPartition tp = b.getKey();
      probe.assign(List.of(tp));
      probe.seek(tp, b.getValue());
      final ConsumerRecords<byte[], byte[]> records = probe.poll(Duration.ofMillis(300));
      if (!records.isEmpty() || probe.position(tp) < end.get(tp)) return false;
    }
    lastStatus = "done (remaining offsets are transaction markers)";
    return true;
  }

  @Override
  public void close() {
    probe.close();
    admin.close();
  }
}
