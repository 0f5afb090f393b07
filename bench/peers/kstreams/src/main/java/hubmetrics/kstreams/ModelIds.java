package hubmetrics.kstreams;

/**
 * Hub repo id syntax, the same rule as hubmetricsd (lib/events/model_id.cc): "name" or
 * "namespace/name"; each part 1..96 characters of [A-Za-z0-9_.-], starting and ending with
 * [A-Za-z0-9_]; no "--" or ".." anywhere; not ending in ".git". ASCII only.
 */
final class ModelIds {
  private static final int MAX_PART_LENGTH = 96;

  private ModelIds() {}

  private static boolean isWordChar(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  }

  private static boolean isIdChar(char c) {
    return isWordChar(c) || c == '-' || c == '.';
  }

  private static boolean isValidPart(String id, int from, int to) {
    final int n = to - from;
    if (n <= 0 || n > MAX_PART_LENGTH) return false;
    if (!isWordChar(id.charAt(from)) || !isWordChar(id.charAt(to - 1))) return false;
    for (int i = from; i < to; i++) {
      if (!isIdChar(id.charAt(i))) return false;
    }
    return true;
  }

  private static boolean isValidPart(byte[] b, int from, int to) {
    final int n = to - from;
    if (n <= 0 || n > MAX_PART_LENGTH) return false;
    if (!isWordChar((char) (b[from] & 0xff)) || !isWordChar((char) (b[to - 1] & 0xff))) {
      return false;
    }
    for (int i = from; i < to; i++) {
      if (!isIdChar((char) (b[i] & 0xff))) return false;
    }
    return true;
  }

  /** isValid of the UTF-8 bytes b[from, to): non-ASCII bytes fail as non-ASCII chars do. */
  static boolean isValid(byte[] b, int from, int to) {
    final int len = to - from;
    if (len >= 4
        && b[to - 4] == '.'
        && b[to - 3] == 'g'
        && b[to - 2] == 'i'
        && b[to - 1] == 't') {
      return false;
    }
    int slash = -1;
    for (int i = from; i < to; i++) {
      if (i + 1 < to && (b[i] == '-' || b[i] == '.') && b[i + 1] == b[i]) return false;
      if (b[i] == '/' && slash < 0) slash = i;
    }
    if (slash < 0) return isValidPart(b, from, to);
    return isValidPart(b, from, slash) && isValidPart(b, slash + 1, to);
  }

  static boolean isValid(String id) {
    if (id.endsWith(".git") || id.contains("--") || id.contains("..")) return false;
    final int slash = id.indexOf('/');
    if (slash < 0) return isValidPart(id, 0, id.length());
    // A second '/' lands in the name part, where isIdChar rejects it.
    return isValidPart(id, 0, slash) && isValidPart(id, slash + 1, id.length());
  }
}
