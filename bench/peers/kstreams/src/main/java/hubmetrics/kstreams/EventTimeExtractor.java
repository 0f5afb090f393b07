package hubmetrics.kstreams;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.streams.processor.TimestampExtractor;

/**
 * Event time as the record timestamp, so that stream time (the watermark of each task) follows
 * the events' own clock. Records that are rejected anyway, or whose time is more than the future
 * skew ahead of the wall clock, keep the partition's time: one bad clock cannot move stream time
 * (hubmetricsd's rule). Negative times (before 1970, valid but too late) would make Kafka Streams
 * drop the record silently, so they get the partition time too and are rejected downstream.
 */
final class EventTimeExtractor implements TimestampExtractor {
  private final long maxFutureSkewMs;

  EventTimeExtractor(long maxFutureSkewMs) {
    this.maxFutureSkewMs = maxFutureSkewMs;
  }

  @Override
  public long extract(ConsumerRecord<Object, Object> record, long partitionTime) {
    final long fallback = Math.max(partitionTime, 0L);
    if (!(record.value() instanceof ParsedEvent)) return Math.max(record.timestamp(), fallback);
    final ParsedEvent e = (ParsedEvent) record.value();
    e.originalTimestamp = record.timestamp();
    if (!e.ok()) return fallback;
    final long t = e.timeMs();
    if (t < 0 || t > System.currentTimeMillis() + maxFutureSkewMs) return fallback;
    return t;
  }
}
