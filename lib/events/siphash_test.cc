#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/events/events.h"

namespace hubmetrics {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// The reference test vectors of SipHash-2-4 with 64-bit output
// (veorq/SipHash, vectors.h, vectors_sip64): key 00 01 .. 0f, message i is
// the bytes 00 01 .. i-1; each output is written as its 8 bytes in order.
constexpr const char* kVectorsSip64[64] = {
    "310e0edd47db6f72", "fd67dc93c539f874", "5a4fa9d909806c0d", "2d7efbd796666785",
    "b7877127e09427cf", "8da699cd64557618", "cee3fe586e46c9cb", "37d1018bf50002ab",
    "6224939a79f5f593", "b0e4a90bdf82009e", "f3b9dd94c5bb5d7a", "a7ad6b22462fb3f4",
    "fbe50e86bc8f1e75", "903d84c02756ea14", "eef27a8e90ca23f7", "e545be4961ca29a1",
    "db9bc2577fcc2a3f", "9447be2cf5e99a69", "9cd38d96f0b3c14b", "bd6179a71dc96dbb",
    "98eea21af25cd6be", "c7673b2eb0cbf2d0", "883ea3e395675393", "c8ce5ccd8c030ca8",
    "94af49f6c650adb8", "eab8858ade92e1bc", "f315bb5bb835d817", "adcf6b0763612e2f",
    "a5c91da7acaa4dde", "716595876650a2a6", "28ef495c53a387ad", "42c341d8fa92d832",
    "ce7cf2722f512771", "e37859f94623f3a7", "381205bb1ab0e012", "ae97a10fd434e015",
    "b4a31508beff4d31", "81396229f0907902", "4d0cf49ee5d4dcca", "5c73336a76d8bf9a",
    "d0a704536ba93e0e", "925958fcd6420cad", "a915c29bc8067318", "952b79f3bc0aa6d4",
    "f21df2e41d4535f9", "87577519048f53a9", "10a56cf5dfcd9adb", "eb75095ccd986cd0",
    "51a9cb9ecba312e6", "96afadfc2ce666c7", "72fe52975a4364ee", "5a1645b276d592a1",
    "b274cb8ebf87870a", "6f9bb4203de7b381", "eaecb2a30b22a87f", "9924a43cc1315724",
    "bd838d3aafbf8db7", "0b1a2a3265d51aea", "135079a3231ce660", "932b2846e4d70666",
    "e1915f5cb1eca46c", "f325965ca16d629f", "575ff28e60381be5", "724506eb4c328a95",
};

// The vector's bytes are the little-endian encoding of the 64-bit output.
uint64_t VectorValue(const char* hex) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) {
    v = (v << 8) | std::stoul(std::string(hex + 2 * i, 2), nullptr, 16);
  }
  return v;
}

std::array<uint8_t, 16> ReferenceKey() {
  std::array<uint8_t, 16> key;
  for (int i = 0; i < 16; ++i) key[i] = static_cast<uint8_t>(i);
  return key;
}

std::string ReferenceMessage(int len) {
  std::string m;
  for (int i = 0; i < len; ++i) m.push_back(static_cast<char>(i));
  return m;
}

TEST(SipHash24Test, MatchesReferenceVectors) {
  for (int i = 0; i < 64; ++i) {
    EXPECT_EQ(SipHash24(ReferenceKey(), ReferenceMessage(i)), VectorValue(kVectorsSip64[i]))
        << "message length " << i;
  }
}

TEST(SipHash24Test, KeyMatters) {
  std::array<uint8_t, 16> other = ReferenceKey();
  other[15] ^= 1;
  EXPECT_NE(SipHash24(other, "u-81723"), SipHash24(ReferenceKey(), "u-81723"));
}

class KeyFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("events_keyfile_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A key file as an operator should leave it: mode 0600 unless told.
  std::string Write(const std::string& name, const std::string& contents, mode_t mode = 0600) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << contents;
    EXPECT_EQ(::chmod(path.c_str(), mode), 0);
    return path;
  }
  static std::string Read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  std::filesystem::path dir_;
};

TEST_F(KeyFileTest, LoadsReferenceKeyWithAndWithoutNewline) {
  const uint64_t expected = VectorValue(kVectorsSip64[12]);
  for (const std::string& contents : std::vector<std::string>{
           "000102030405060708090a0b0c0d0e0f", "000102030405060708090a0b0c0d0e0f\n",
           "000102030405060708090A0B0C0D0E0F\n"}) {
    absl::StatusOr<UserHasher> h = UserHasher::FromKeyFile(Write("key", contents));
    ASSERT_TRUE(h.ok()) << h.status();
    EXPECT_EQ(h->Hash(ReferenceMessage(12)), expected) << contents;
  }
}

TEST_F(KeyFileTest, RejectsBadContentsWithoutEchoingThem) {
  for (const std::string& contents : std::vector<std::string>{
           std::string(""), std::string("\n"),
           std::string("000102030405060708090a0b0c0d0e0"),       // 31 digits
           std::string("000102030405060708090a0b0c0d0e0f0"),     // 33 digits
           std::string("000102030405060708090a0b0c0d0e0g"),      // not hex
           std::string("000102030405060708090a0b0c0d0e0f\n\n"),  // two newlines
           std::string("000102030405060708090a0b0c0d0e0f\r\n"),  // CRLF
           std::string(" 000102030405060708090a0b0c0d0e0f"),     // leading space
           std::string("0x0102030405060708090a0b0c0d0e0f"),      // prefix
           std::string("000102030405060708090a0b0c0d0e0f 00"),   // trailing junk
           std::string(10000, 'a'),                              // far too long
       }) {
    absl::StatusOr<UserHasher> h = UserHasher::FromKeyFile(Write("key", contents));
    ASSERT_FALSE(h.ok()) << "accepted: " << contents;
    EXPECT_EQ(h.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(h.status().message(), HasSubstr("32 hexadecimal digits"));
    if (contents.size() > 4) {
      EXPECT_THAT(h.status().message(), Not(HasSubstr(contents.substr(1, 20))));
    }
  }
}

TEST_F(KeyFileTest, MissingFileIsNotFound) {
  absl::StatusOr<UserHasher> h = UserHasher::FromKeyFile((dir_ / "nope").string());
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(h.status().message(), HasSubstr("nope"));
}

TEST_F(KeyFileTest, CreatesPrivateKeyAndReloadsIt) {
  const std::string path = (dir_ / "user_hash.key").string();
  const mode_t old_umask = ::umask(0);  // the mode must not depend on the umask
  absl::StatusOr<UserHasher> created = UserHasher::LoadOrCreateKeyFile(path);
  ::umask(old_umask);
  ASSERT_TRUE(created.ok()) << created.status();

  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  const std::string contents = Read(path);
  ASSERT_EQ(contents.size(), 33u);
  EXPECT_EQ(contents.back(), '\n');
  EXPECT_EQ(contents.find_first_not_of("0123456789abcdef"), 32u);

  // The key in the file is the key in use: check against SipHash24 directly.
  std::array<uint8_t, 16> key;
  for (int i = 0; i < 16; ++i) key[i] = std::stoul(contents.substr(2 * i, 2), nullptr, 16);
  EXPECT_EQ(created->Hash("u-81723"), SipHash24(key, "u-81723"));

  absl::StatusOr<UserHasher> reloaded = UserHasher::LoadOrCreateKeyFile(path);
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  EXPECT_EQ(reloaded->Hash("u-81723"), created->Hash("u-81723"));
  absl::StatusOr<UserHasher> loaded = UserHasher::FromKeyFile(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->Hash("u-1"), created->Hash("u-1"));
  EXPECT_EQ(Read(path), contents);  // loading does not rewrite

  // Only the key file is left behind (no temporary files).
  int entries = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir_)) ++entries;
  EXPECT_EQ(entries, 1);
}

TEST_F(KeyFileTest, KeyOthersMayReadIsRefused) {
  for (mode_t mode : {0644, 0640, 0604, 0660, 0606}) {
    const std::string path = Write("key", "000102030405060708090a0b0c0d0e0f\n", mode);
    absl::StatusOr<UserHasher> h = UserHasher::FromKeyFile(path);
    EXPECT_EQ(h.status().code(), absl::StatusCode::kFailedPrecondition) << std::oct << mode;
    EXPECT_THAT(std::string(h.status().message()), HasSubstr("chmod 600")) << std::oct << mode;
    EXPECT_THAT(std::string(h.status().message()), Not(HasSubstr("0001020304")));
    EXPECT_FALSE(UserHasher::LoadOrCreateKeyFile(path).ok());  // never replaced either
  }
  for (mode_t mode : {0600, 0400}) {
    EXPECT_TRUE(
        UserHasher::FromKeyFile(Write("key", "000102030405060708090a0b0c0d0e0f", mode)).ok())
        << std::oct << mode;
  }
}

TEST(UserHasherTest, FingerprintIdentifiesTheKeyOnly) {
  std::array<uint8_t, 16> a{};
  std::array<uint8_t, 16> b{};
  b[15] = 1;
  EXPECT_EQ(UserHasher(a).KeyFingerprint(), UserHasher(a).KeyFingerprint());
  EXPECT_NE(UserHasher(a).KeyFingerprint(), UserHasher(b).KeyFingerprint());
  // Not the hash of any user id that would appear in the state.
  EXPECT_NE(UserHasher(a).KeyFingerprint(), UserHasher(a).Hash(""));
}

TEST_F(KeyFileTest, NewKeysAreRandom) {
  absl::StatusOr<UserHasher> a = UserHasher::LoadOrCreateKeyFile((dir_ / "a").string());
  absl::StatusOr<UserHasher> b = UserHasher::LoadOrCreateKeyFile((dir_ / "b").string());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(Read((dir_ / "a").string()), Read((dir_ / "b").string()));
  EXPECT_NE(a->Hash("u-81723"), b->Hash("u-81723"));
}

TEST_F(KeyFileTest, ConcurrentCreatorsAgreeOnOneKey) {
  const std::string path = (dir_ / "raced.key").string();
  constexpr int kThreads = 8;
  std::vector<uint64_t> hashes(kThreads);
  std::vector<std::string> errors(kThreads);
  {
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&, i] {
        absl::StatusOr<UserHasher> h = UserHasher::LoadOrCreateKeyFile(path);
        if (h.ok()) {
          hashes[i] = h->Hash("u-81723");
        } else {
          errors[i] = std::string(h.status().message());
        }
      });
    }
    for (std::thread& t : threads) t.join();
  }
  absl::StatusOr<UserHasher> final_key = UserHasher::FromKeyFile(path);
  ASSERT_TRUE(final_key.ok()) << final_key.status();
  for (int i = 0; i < kThreads; ++i) {
    EXPECT_EQ(errors[i], "");
    EXPECT_EQ(hashes[i], final_key->Hash("u-81723")) << "thread " << i;
  }
  int entries = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir_)) ++entries;
  EXPECT_EQ(entries, 1);
}

TEST_F(KeyFileTest, ExistingBadFileIsRejectedNotReplaced) {
  const std::string path = Write("key", "not a key\n");
  absl::StatusOr<UserHasher> h = UserHasher::LoadOrCreateKeyFile(path);
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Read(path), "not a key\n");
}

TEST_F(KeyFileTest, MissingDirectoryIsAnError) {
  absl::StatusOr<UserHasher> h =
      UserHasher::LoadOrCreateKeyFile((dir_ / "no_such_dir" / "key").string());
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace hubmetrics
