// SipHash-2-4 and the user-id hasher with its key file.
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "lib/events/events.h"

namespace hubmetrics {
namespace {

inline uint64_t Rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

inline uint64_t Load64Le(const uint8_t* p) {
  uint64_t v = 0;
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(&v, p, sizeof v);
  } else {
    for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  }
  return v;
}

inline void SipRound(uint64_t& v0, uint64_t& v1, uint64_t& v2, uint64_t& v3) {
  v0 += v1;
  v1 = Rotl(v1, 13);
  v1 ^= v0;
  v0 = Rotl(v0, 32);
  v2 += v3;
  v3 = Rotl(v3, 16);
  v3 ^= v2;
  v0 += v3;
  v3 = Rotl(v3, 21);
  v3 ^= v0;
  v2 += v1;
  v1 = Rotl(v1, 17);
  v1 ^= v2;
  v2 = Rotl(v2, 32);
}

// Key files are tiny; anything larger is certainly not a key file, and
// bounding the read keeps a wrong path (e.g. a log file) from being slurped.
constexpr size_t kMaxKeyFileBytes = 4096;
constexpr char kKeyFormat[] =
    "expected exactly 32 hexadecimal digits (a 128-bit key), optionally followed by one newline";

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// ErrnoToStatus appends strerror(err) itself.
absl::Status ErrnoError(int err, const std::string& what) { return absl::ErrnoToStatus(err, what); }

absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, absl::StrCat("cannot open user hash key file ", path));
  // A key others can read lets them link hashes back to user ids.
  struct stat st;
  if (::fstat(fd, &st) == 0 && (st.st_mode & 077) != 0) {
    ::close(fd);
    return absl::FailedPreconditionError(absl::StrFormat(
        "user hash key file %s has mode %04o: other users can read or change it; run "
        "'chmod 600 %s' (and keep it owned by the service's user)",
        path, st.st_mode & 07777, path));
  }
  std::string contents;
  char buf[kMaxKeyFileBytes + 1];
  while (contents.size() <= kMaxKeyFileBytes) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return ErrnoError(err, absl::StrCat("cannot read user hash key file ", path));
    }
    if (n == 0) break;
    contents.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return contents;
}

// Never echoes the contents: they are (close to) the secret.
absl::StatusOr<std::array<uint8_t, 16>> ParseKey(std::string_view contents,
                                                 const std::string& path) {
  if (contents.ends_with('\n')) contents.remove_suffix(1);
  std::array<uint8_t, 16> key{};
  bool ok = contents.size() == 32;
  for (size_t i = 0; ok && i < 16; ++i) {
    const int hi = HexValue(contents[2 * i]);
    const int lo = HexValue(contents[2 * i + 1]);
    ok = hi >= 0 && lo >= 0;
    key[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("user hash key file ", path, " is not a key: ", kKeyFormat));
  }
  return key;
}

absl::Status WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "write");
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status FillRandom(uint8_t* out, size_t len) {
  while (len > 0) {
    const ssize_t n = ::getrandom(out, len, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "getrandom");
    }
    out += n;
    len -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// fsync of the directory makes the new name durable, so a crash right after
// creation cannot lose the key while hashes made with it are already stored.
void SyncParentDir(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string dir =
      slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

uint64_t SipHash24(const std::array<uint8_t, 16>& key, std::string_view data) {
  const uint64_t k0 = Load64Le(key.data());
  const uint64_t k1 = Load64Le(key.data() + 8);
  uint64_t v0 = 0x736f6d6570736575ULL ^ k0;
  uint64_t v1 = 0x646f72616e646f6dULL ^ k1;
  uint64_t v2 = 0x6c7967656e657261ULL ^ k0;
  uint64_t v3 = 0x7465646279746573ULL ^ k1;

  const auto* in = reinterpret_cast<const uint8_t*>(data.data());
  const size_t len = data.size();
  const uint8_t* const end = in + (len - len % 8);
  for (; in != end; in += 8) {
    const uint64_t m = Load64Le(in);
    v3 ^= m;
    SipRound(v0, v1, v2, v3);
    SipRound(v0, v1, v2, v3);
    v0 ^= m;
  }
  uint64_t b = static_cast<uint64_t>(len) << 56;
  for (size_t i = 0; i < len % 8; ++i) b |= static_cast<uint64_t>(in[i]) << (8 * i);
  v3 ^= b;
  SipRound(v0, v1, v2, v3);
  SipRound(v0, v1, v2, v3);
  v0 ^= b;

  v2 ^= 0xff;
  for (int i = 0; i < 4; ++i) SipRound(v0, v1, v2, v3);
  return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t UserHasher::KeyFingerprint() const {
  // A hash under the key of a fixed text: equal for equal keys, and says
  // nothing about the key itself.
  return SipHash24(key_, "hubmetrics user-hash key fingerprint v1");
}

UserHash UserHasher::Hash(std::string_view user_id) const { return SipHash24(key_, user_id); }

absl::StatusOr<UserHasher> UserHasher::FromKeyFile(const std::string& path) {
  absl::StatusOr<std::string> contents = ReadSmallFile(path);
  if (!contents.ok()) return contents.status();
  absl::StatusOr<std::array<uint8_t, 16>> key = ParseKey(*contents, path);
  if (!key.ok()) return key.status();
  return UserHasher(*key);
}

absl::StatusOr<UserHasher> UserHasher::LoadOrCreateKeyFile(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) return FromKeyFile(path);
  if (errno != ENOENT) {
    return ErrnoError(errno, absl::StrCat("cannot stat user hash key file ", path));
  }

  std::array<uint8_t, 16> key;
  uint64_t nonce = 0;
  if (absl::Status s = FillRandom(key.data(), key.size()); !s.ok()) return s;
  if (absl::Status s = FillRandom(reinterpret_cast<uint8_t*>(&nonce), sizeof(nonce)); !s.ok()) {
    return s;
  }
  std::string text;
  text.reserve(33);
  for (uint8_t byte : key) absl::StrAppend(&text, absl::Hex(byte, absl::kZeroPad2));
  text.push_back('\n');

  // Written under a temporary name and then published in one step, so a
  // reader never sees a partial key file.
  const std::string tmp = absl::StrFormat("%s.tmp-%d-%016x", path, ::getpid(), nonce);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    return ErrnoError(errno, absl::StrCat("cannot create user hash key file ", path,
                                          " (writing the temporary file ", tmp, ")"));
  }
  absl::Status s;
  if (::fchmod(fd, 0600) != 0) s = ErrnoError(errno, "fchmod");  // whatever the umask
  if (s.ok()) s = WriteAll(fd, text);
  if (s.ok() && ::fsync(fd) != 0) s = ErrnoError(errno, "fsync");
  if (::close(fd) != 0 && s.ok()) s = ErrnoError(errno, "close");
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return absl::Status(s.code(),
                        absl::StrCat("cannot write user hash key file ", tmp, ": ", s.message()));
  }
  // link() publishes without replacing: if another process created the key
  // meanwhile, both must use that one, not overwrite it.
  if (::link(tmp.c_str(), path.c_str()) == 0) {
    ::unlink(tmp.c_str());
  } else if (errno == EEXIST) {
    ::unlink(tmp.c_str());
    return FromKeyFile(path);
  } else if (::rename(tmp.c_str(), path.c_str()) != 0) {  // file systems without hard links
    const int err = errno;
    ::unlink(tmp.c_str());
    return ErrnoError(err, absl::StrCat("cannot create user hash key file ", path));
  }
  SyncParentDir(path);
  return UserHasher(key);
}

}  // namespace hubmetrics
