package hubmetrics.kstreams;

import com.google.protobuf.InvalidProtocolBufferException;
import hubmetrics.v1.Events.DownloadEvent;
import java.time.LocalDate;
import java.time.temporal.IsoFields;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.kafka.common.serialization.Deserializer;

/**
 * One input record after decoding: either a decoded event or the reason it is rejected. The
 * decode rules are hubmetricsd's (lib/events/decode.cc, DecodeBinaryEvent; lib/ingest/pipeline.cc
 * for the size): longer than 65536 bytes (hubmetricsd's default --max_event_bytes) -> too_large,
 * before anything else; not a parseable
 * binary DownloadEvent -> malformed; model_id, user_id or time absent/empty -> missing_field;
 * model_id not a Hub repo id -> invalid_model_id; time outside years 0001..9999 or nanos outside
 * [0, 1e9) -> invalid_time. The time checks (future, too_late) come later, in the topology.
 *
 * <p>The raw user id lives only in this in-memory object; the topology hashes it before it
 * reaches a topic or a store.
 */
final class ParsedEvent {
  static final long MIN_SECONDS = -62135596800L; // 0001-01-01T00:00:00Z
  static final long MAX_SECONDS = 253402300799L; // 9999-12-31T23:59:59Z
  static final long DAY_MS = 86_400_000L;
  static final int MAX_EVENT_BYTES = 64 * 1024;

  final byte[] raw;
  String reason; // null while accepted
  String detail = "";
  String modelId;
  String userId;
  long seconds;
  int nanos;
  long originalTimestamp = -1; // the record's own timestamp, for the DLQ copy
  int sourcePartition = -1;
  long sourceOffset = -1;

  private ParsedEvent(byte[] raw) {
    this.raw = raw;
  }

  static ParsedEvent decode(byte[] bytes) {
    final byte[] raw = bytes == null ? new byte[0] : bytes;
    final ParsedEvent p = new ParsedEvent(raw);
    if (raw.length > MAX_EVENT_BYTES) {
      return p.reject(
          "too_large",
          "record of " + raw.length + " bytes is longer than the limit of " + MAX_EVENT_BYTES
              + " bytes");
    }
    final DownloadEvent e;
    try {
      e = DownloadEvent.parseFrom(raw);
    } catch (InvalidProtocolBufferException ex) {
      return p.reject("malformed", "not a valid binary DownloadEvent (" + raw.length + " bytes)");
    }
    if (e.getModelId().isEmpty() || e.getUserId().isEmpty() || !e.hasTime()) {
      return p.reject("missing_field", "missing or empty field(s)");
    }
    if (!ModelIds.isValid(e.getModelId())) {
      return p.reject("invalid_model_id", "invalid model id");
    }
    final long s = e.getTime().getSeconds();
    final int n = e.getTime().getNanos();
    if (s < MIN_SECONDS || s > MAX_SECONDS || n < 0 || n >= 1_000_000_000) {
      return p.reject("invalid_time", "time outside years 0001..9999 or nanos outside [0, 1e9)");
    }
    p.modelId = e.getModelId();
    p.userId = e.getUserId();
    p.seconds = s;
    p.nanos = n;
    return p;
  }

  ParsedEvent reject(String reason, String detail) {
    this.reason = reason;
    this.detail = detail;
    this.userId = null;
    return this;
  }

  boolean ok() {
    return reason == null;
  }

  /** Event time in epoch milliseconds (floored). */
  long timeMs() {
    return seconds * 1000L + nanos / 1_000_000;
  }

  /** UTC day number since 1970-01-01. */
  long day() {
    return Math.floorDiv(seconds, 86_400L);
  }

  private static final ConcurrentHashMap<Long, String> WEEK_OF_DAY = new ConcurrentHashMap<>();

  /** ISO week label "YYYY-Www" of a UTC day number (memoized: few distinct days). */
  static String isoWeek(long day) {
    return WEEK_OF_DAY.computeIfAbsent(day, ParsedEvent::formatIsoWeek);
  }

  private static String formatIsoWeek(long day) {
    final LocalDate d = LocalDate.ofEpochDay(day);
    final int year = d.get(IsoFields.WEEK_BASED_YEAR);
    final int week = d.get(IsoFields.WEEK_OF_WEEK_BASED_YEAR);
    return String.format("%04d-W%02d", year, week);
  }

  /** Value deserializer of the input topic: never throws, bad bytes become a rejection. */
  static final class Decoder implements Deserializer<ParsedEvent> {
    @Override
    public ParsedEvent deserialize(String topic, byte[] data) {
      return decode(data);
    }
  }
}
