package hubmetrics.kstreams;

import com.google.common.hash.HashFunction;
import com.google.protobuf.CodedInputStream;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.UnsafeByteOperations;
import com.google.protobuf.WireFormat;
import hubmetrics.v1.Events.DownloadEvent;
import java.nio.charset.StandardCharsets;
import java.time.LocalDate;
import java.util.Arrays;
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
 *
 * <p>Two decoders with the same verdicts: {@link #decode} (protobuf-java's parseFrom, the ids as
 * Java Strings) and {@link #decodeRaw} (--decode=raw: a wire-format walker that keeps the ids as
 * byte ranges of the record, validates them in place, and lets the user id be hashed from those
 * bytes, with no String made for either).
 */
final class ParsedEvent {
  static final long MIN_SECONDS = -62135596800L; // 0001-01-01T00:00:00Z
  static final long MAX_SECONDS = 253402300799L; // 9999-12-31T23:59:59Z
  static final long DAY_MS = 86_400_000L;
  static final int MAX_EVENT_BYTES = 64 * 1024;

  final byte[] raw;
  String reason; // null while accepted
  String detail = "";
  String modelId; // decode(): the ids as Strings
  String userId;
  int modelOff = -1; // decodeRaw(): the ids as ranges of raw
  int modelLen;
  int userOff = -1;
  int userLen;
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

  /**
   * decode()'s verdicts from the wire format directly: the same fields (model_id = 1, user_id = 2,
   * time = 3 with seconds = 1, nanos = 2), the same rules of protobuf-java for a proto3 message
   * (the last occurrence of a scalar wins, occurrences of a message field merge, a known field
   * number with another wire type is an unknown field, strings must be valid UTF-8, an end-group
   * tag where none is open is malformed).
   */
  static ParsedEvent decodeRaw(byte[] bytes) {
    final byte[] raw = bytes == null ? new byte[0] : bytes;
    final ParsedEvent p = new ParsedEvent(raw);
    if (raw.length > MAX_EVENT_BYTES) {
      return p.reject(
          "too_large",
          "record of " + raw.length + " bytes is longer than the limit of " + MAX_EVENT_BYTES
              + " bytes");
    }
    boolean hasTime = false;
    long s = 0;
    int n = 0;
    try {
      final CodedInputStream in = CodedInputStream.newInstance(raw);
      while (true) {
        final int tag = in.readTag();
        if (tag == 0) break;
        if (tag == MODEL_TAG || tag == USER_TAG) {
          final int len = in.readRawVarint32();
          final int off = in.getTotalBytesRead();
          in.skipRawBytes(len); // throws on a negative or truncated length
          if (!UnsafeByteOperations.unsafeWrap(raw, off, len).isValidUtf8()) {
            throw new InvalidProtocolBufferException("invalid UTF-8");
          }
          if (tag == MODEL_TAG) {
            p.modelOff = off;
            p.modelLen = len;
          } else {
            p.userOff = off;
            p.userLen = len;
          }
        } else if (tag == TIME_TAG) {
          final int len = in.readRawVarint32();
          final int limit = in.pushLimit(len);
          while (true) {
            final int t = in.readTag();
            if (t == 0) break;
            if (t == SECONDS_TAG) {
              s = in.readInt64();
            } else if (t == NANOS_TAG) {
              n = in.readInt32();
            } else if (!in.skipField(t)) {
              throw new InvalidProtocolBufferException("unexpected end-group tag");
            }
          }
          in.popLimit(limit);
          hasTime = true;
        } else if (!in.skipField(tag)) {
          throw new InvalidProtocolBufferException("unexpected end-group tag");
        }
      }
    } catch (InvalidProtocolBufferException ex) {
      return p.reject("malformed", "not a valid binary DownloadEvent (" + raw.length + " bytes)");
    } catch (java.io.IOException ex) {
      return p.reject("malformed", "not a valid binary DownloadEvent (" + raw.length + " bytes)");
    }
    if (p.modelOff < 0 || p.modelLen == 0 || p.userOff < 0 || p.userLen == 0 || !hasTime) {
      p.modelOff = p.userOff = -1;
      return p.reject("missing_field", "missing or empty field(s)");
    }
    if (!ModelIds.isValid(raw, p.modelOff, p.modelOff + p.modelLen)) {
      p.modelOff = p.userOff = -1;
      return p.reject("invalid_model_id", "invalid model id");
    }
    if (s < MIN_SECONDS || s > MAX_SECONDS || n < 0 || n >= 1_000_000_000) {
      p.modelOff = p.userOff = -1;
      return p.reject("invalid_time", "time outside years 0001..9999 or nanos outside [0, 1e9)");
    }
    p.seconds = s;
    p.nanos = n;
    return p;
  }

  // Tags: field number << 3 | wire type.
  private static final int MODEL_TAG = 1 << 3 | WireFormat.WIRETYPE_LENGTH_DELIMITED;
  private static final int USER_TAG = 2 << 3 | WireFormat.WIRETYPE_LENGTH_DELIMITED;
  private static final int TIME_TAG = 3 << 3 | WireFormat.WIRETYPE_LENGTH_DELIMITED;
  private static final int SECONDS_TAG = 1 << 3 | WireFormat.WIRETYPE_VARINT;
  private static final int NANOS_TAG = 2 << 3 | WireFormat.WIRETYPE_VARINT;

  ParsedEvent reject(String reason, String detail) {
    this.reason = reason;
    this.detail = detail;
    this.userId = null;
    this.userOff = -1;
    return this;
  }

  /** SipHash of the user id's UTF-8 bytes (in place for decodeRaw's events). */
  long userHash(HashFunction f) {
    if (userOff >= 0) return f.hashBytes(raw, userOff, userLen).asLong();
    return f.hashBytes(userId.getBytes(StandardCharsets.UTF_8)).asLong();
  }

  /** The model id's UTF-8 bytes (a copy). */
  byte[] modelBytes() {
    if (modelOff >= 0) return Arrays.copyOfRange(raw, modelOff, modelOff + modelLen);
    return modelId.getBytes(StandardCharsets.UTF_8);
  }

  /** The model id as a String (valid ids are ASCII). */
  String model() {
    if (modelId == null && modelOff >= 0) {
      modelId = new String(raw, modelOff, modelLen, StandardCharsets.US_ASCII);
    }
    return modelId;
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
    private final boolean rawDecode;

    Decoder(boolean rawDecode) {
      this.rawDecode = rawDecode;
    }

    @Override
    public ParsedEvent deserialize(String topic, byte[] data) {
      return rawDecode ? decodeRaw(data) : decode(data);
    }
  }
}
