package hubmetrics.kstreams;

import com.google.protobuf.ByteString;
import com.google.protobuf.Timestamp;
import hubmetrics.v1.Events.DownloadEvent;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Random;

/**
 * --check_decoders=N: ParsedEvent.decodeRaw must give decode's verdict (reason, model id, user
 * id bytes, time) on N records: DownloadEvents with valid and invalid ids and times, and the same
 * with random byte flips, truncations, insertions, and unknown or mistyped fields. Prints one
 * line; exit status 0 when every record agreed.
 */
final class DecoderCheck {
  private DecoderCheck() {}

  private static final String[] MODELS = {
    "bert-base-uncased", "org/model", "a/b", "x.git", "a--b/c", "a/b..c", "-bad/x", "ok_/y_",
    "caf\u00e9/model", "", "n/" + "m".repeat(97), "a/b/c", "Org.Name/Model-1.5"
  };
  private static final String[] USERS = {"u1", "anon-42", "\u00fcser", "", "x".repeat(300)};

  static int run(long n, long seed) {
    final Random rnd = new Random(seed);
    final java.util.TreeMap<String, Long> byVerdict = new java.util.TreeMap<>();
    long differ = 0;
    String firstDiff = null;
    for (long i = 0; i < n; i++) {
      final byte[] b = sample(rnd);
      final ParsedEvent a = ParsedEvent.decode(b);
      final ParsedEvent r = ParsedEvent.decodeRaw(b);
      final String va = verdict(a);
      final String vr = verdict(r);
      byVerdict.merge(a.ok() ? "ok" : a.reason, 1L, Long::sum);
      if (!va.equals(vr)) {
        differ++;
        if (firstDiff == null) {
          firstDiff = Arrays.toString(b) + ": decode " + va + ", decodeRaw " + vr;
        }
      }
    }
    System.out.printf(
        "{\"check\":\"decoders\",\"records\":%d,\"by_verdict\":{%s},\"differ\":%d%s}%n",
        n,
        byVerdict.entrySet().stream()
            .map(x -> "\"" + x.getKey() + "\":" + x.getValue())
            .collect(java.util.stream.Collectors.joining(",")),
        differ, firstDiff == null ? "" : ",\"first\":\"" + firstDiff.replace("\"", "'") + "\"");
    return differ == 0 ? 0 : 1;
  }

  private static String verdict(ParsedEvent e) {
    if (!e.ok()) return e.reason;
    final byte[] user =
        e.userOff >= 0
            ? Arrays.copyOfRange(e.raw, e.userOff, e.userOff + e.userLen)
            : e.userId.getBytes(StandardCharsets.UTF_8);
    return "ok " + e.model() + " " + Arrays.toString(user) + " " + e.seconds + "." + e.nanos;
  }

  private static byte[] sample(Random rnd) {
    final DownloadEvent.Builder e = DownloadEvent.newBuilder();
    if (rnd.nextInt(10) > 0) e.setModelId(MODELS[rnd.nextInt(MODELS.length)]);
    if (rnd.nextInt(10) > 0) e.setUserId(USERS[rnd.nextInt(USERS.length)]);
    if (rnd.nextInt(10) > 0) {
      final long s =
          switch (rnd.nextInt(5)) {
            case 0 -> ParsedEvent.MIN_SECONDS - 1;
            case 1 -> ParsedEvent.MAX_SECONDS + rnd.nextInt(2);
            default -> 1_741_000_000L + rnd.nextInt(10_000_000);
          };
      final int nanos = rnd.nextInt(8) == 0 ? -1 - rnd.nextInt(5) : rnd.nextInt(1_000_000_000);
      e.setTime(Timestamp.newBuilder().setSeconds(s).setNanos(nanos));
    }
    byte[] b = e.build().toByteArray();
    switch (rnd.nextInt(8)) {
      case 0 -> { // a byte flipped
        if (b.length > 0) b[rnd.nextInt(b.length)] ^= (byte) (1 << rnd.nextInt(8));
      }
      case 1 -> b = Arrays.copyOf(b, rnd.nextInt(b.length + 1)); // truncated
      case 2 -> { // an unknown field, or a known number with another wire type, appended
        final int field = 1 + rnd.nextInt(20);
        final int type = new int[] {0, 1, 2, 5}[rnd.nextInt(4)];
        final byte[] extra =
            switch (type) {
              case 0 -> new byte[] {(byte) (field << 3), 5};
              case 1 -> new byte[] {(byte) (field << 3 | 1), 1, 2, 3, 4, 5, 6, 7, 8};
              case 2 -> new byte[] {(byte) (field << 3 | 2), 2, 'a', 'b'};
              default -> new byte[] {(byte) (field << 3 | 5), 1, 2, 3, 4};
            };
        b = concat(b, extra);
      }
      case 3 -> { // a second time field (message fields merge)
        b =
            concat(
                b,
                DownloadEvent.newBuilder()
                    .setTime(Timestamp.newBuilder().setNanos(rnd.nextInt(1000)))
                    .build()
                    .toByteArray());
      }
      case 4 -> { // invalid UTF-8 in the user or model id
        b =
            concat(
                b,
                new byte[] {(byte) ((1 + rnd.nextInt(2)) << 3 | 2), 2, (byte) 0xc3, (byte) 0x28});
      }
      case 5 -> { // random bytes
        b = new byte[rnd.nextInt(40)];
        rnd.nextBytes(b);
      }
      case 6 -> b = concat(b, ByteString.copyFromUtf8("\u0004").toByteArray()); // end-group tag
      default -> {}
    }
    return b;
  }

  private static byte[] concat(byte[] a, byte[] b) {
    final byte[] c = Arrays.copyOf(a, a.length + b.length);
    System.arraycopy(b, 0, c, a.length, b.length);
    return c;
  }
}
