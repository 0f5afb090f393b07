#include "lib/kafka/kafka_config.h"

#include <librdkafka/rdkafkacpp.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hubmetrics {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

std::string Get(RdKafka::Conf& conf, const std::string& key) {
  std::string value;
  EXPECT_EQ(conf.get(key, value), RdKafka::Conf::CONF_OK) << key;
  return value;
}

TEST(ParseKafkaProperties, CommentsBlanksAndTrimming) {
  auto p = ParseKafkaProperties(
      "# a comment\n\n  security.protocol = SASL_SSL \nsasl.mechanisms=PLAIN\nx.y=a=b\n", "f");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_THAT(*p, ElementsAre(Pair("security.protocol", "SASL_SSL"),
                              Pair("sasl.mechanisms", "PLAIN"), Pair("x.y", "a=b")));
}

TEST(ParseKafkaProperties, LineWithoutEqualsNamesTheLine) {
  auto p = ParseKafkaProperties("a=1\nbroken\n", "client.properties");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(p.status().message()), HasSubstr("client.properties line 2"));
  EXPECT_FALSE(ParseKafkaProperties("=x", "f").ok());
}

TEST(LoadKafkaProperties, FileThenFlagsInOrder) {
  char path[] = "/tmp/kafka_config_testXXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  {
    std::ofstream f(path);
    f << "socket.timeout.ms=1000\nclient.id=from-file\n";
  }
  auto p = LoadKafkaProperties(path, {"client.id=from-flag", ""});
  std::remove(path);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_THAT(*p, ElementsAre(Pair("socket.timeout.ms", "1000"), Pair("client.id", "from-file"),
                              Pair("client.id", "from-flag")));
  EXPECT_EQ(LoadKafkaProperties("/nonexistent/kafka.properties", {}).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_FALSE(LoadKafkaProperties("", {"novalue"}).ok());
}

TEST(NewKafkaConf, OrderDefaultsUserEnforced) {
  KafkaSettings s{"127.0.0.1:1", {{"client.id", "user"}, {"socket.timeout.ms", "1234"}}};
  auto conf = NewKafkaConf(s, {{"client.id", "default"}, {"linger.ms", "7"}},
                           {{"enable.auto.commit", "false"}});
  ASSERT_TRUE(conf.ok()) << conf.status();
  EXPECT_EQ(Get(**conf, "bootstrap.servers"), "127.0.0.1:1");
  EXPECT_EQ(Get(**conf, "client.id"), "user");  // the user's value wins over a default
  EXPECT_EQ(Get(**conf, "linger.ms"), "7");
  EXPECT_EQ(Get(**conf, "socket.timeout.ms"), "1234");
  EXPECT_EQ(Get(**conf, "enable.auto.commit"), "false");
}

TEST(NewKafkaConf, UnknownKeyIsNamed) {
  KafkaSettings s{"127.0.0.1:1", {{"no.such.property", "1"}}};
  auto conf = NewKafkaConf(s, {}, {});
  ASSERT_FALSE(conf.ok());
  EXPECT_EQ(conf.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(conf.status().message()), HasSubstr("no.such.property"));
}

TEST(NewKafkaConf, BadValueIsNamedButSecretsAreHidden) {
  auto conf = NewKafkaConf({"127.0.0.1:1", {{"socket.timeout.ms", "soon"}}}, {}, {});
  ASSERT_FALSE(conf.ok());
  EXPECT_THAT(std::string(conf.status().message()), HasSubstr("socket.timeout.ms=soon"));
  auto secret = NewKafkaConf({"127.0.0.1:1", {{"sasl.password.bogus", "hunter2"}}}, {}, {});
  ASSERT_FALSE(secret.ok());
  EXPECT_THAT(std::string(secret.status().message()), ::testing::Not(HasSubstr("hunter2")));
}

TEST(NewKafkaConf, EnforcedSettingsCannotBeOverridden) {
  auto conf = NewKafkaConf({"127.0.0.1:1", {{"enable.auto.commit", "true"}}}, {},
                           {{"enable.auto.commit", "false"}});
  ASSERT_FALSE(conf.ok());
  EXPECT_THAT(std::string(conf.status().message()), HasSubstr("enable.auto.commit"));
  // Restating the enforced value is fine.
  EXPECT_TRUE(NewKafkaConf({"127.0.0.1:1", {{"enable.auto.commit", "false"}}}, {},
                           {{"enable.auto.commit", "false"}})
                  .ok());
}

TEST(NewKafkaConf, EmptyBrokersIsAnError) {
  EXPECT_EQ(NewKafkaConf({"", {}}, {}, {}).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace hubmetrics
