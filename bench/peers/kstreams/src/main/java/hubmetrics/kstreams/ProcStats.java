package hubmetrics.kstreams;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** CPU seconds (utime + stime of /proc/self/stat) and peak RSS (VmHWM) of this JVM. */
final class ProcStats {
  final double cpuSeconds;
  final double peakRssMb;

  private ProcStats(double cpuSeconds, double peakRssMb) {
    this.cpuSeconds = cpuSeconds;
    this.peakRssMb = peakRssMb;
  }

  static ProcStats read(int clkTck) throws IOException {
    final String stat = Files.readString(Path.of("/proc/self/stat"));
    // Fields after the command name, which is in parentheses and may hold spaces.
    final String[] f = stat.substring(stat.lastIndexOf(')') + 2).trim().split(" ");
    // f[0] is field 3 (state); utime is field 14, stime field 15.
    final long ticks = Long.parseLong(f[11]) + Long.parseLong(f[12]);
    double hwmKb = -1;
    for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
      if (line.startsWith("VmHWM:")) {
        hwmKb = Double.parseDouble(line.substring(6).trim().split("\\s+")[0]);
      }
    }
    return new ProcStats((double) ticks / clkTck, hwmKb / 1024.0);
  }
}
