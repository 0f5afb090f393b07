#include "lib/kafka/kafka_ingest.h"

#include <utility>

#include "lib/base/log.h"
#include "lib/base/status_macros.h"
#include "lib/base/thread_name.h"
#include "lib/base/thread_priority.h"

namespace hubmetrics {

absl::StatusOr<std::unique_ptr<KafkaIngest>> KafkaIngest::Start(
    KafkaIngestOptions options, Pipeline* pipeline, std::function<void(absl::Status)> on_fatal) {
  std::unique_ptr<KafkaIngest> k(new KafkaIngest());
  k->pipeline_ = pipeline;
  k->on_fatal_ = std::move(on_fatal);
  const int nice = options.ingest_nice;
  // librdkafka starts its threads inside each client's creation, and a thread
  // inherits its creator's nice value: the clients are created on a thread at
  // the ingest priority so that their fetch and produce threads (a third of
  // ingest's CPU while catching up) get it too. The caller keeps its own:
  // raising a thread's priority back needs CAP_SYS_NICE.
  absl::Status created;
  std::thread([&] {
    SetCurrentThreadName("hm-kafka-init");
    LowerIngestPriority(nice);
    created = [&]() -> absl::Status {
      ASSIGN_OR_RETURN(k->catalog_, KafkaCatalogSource::Create(options.settings, options.catalog,
                                                               pipeline, &k->gate_));
      if (options.role == PipelineRole::kMetrics) {
        ASSIGN_OR_RETURN(k->unique_, KafkaUniqueSource::Create(options.settings, options.unique,
                                                               pipeline, &k->gate_));
        return absl::OkStatus();
      }
      ASSIGN_OR_RETURN(k->dead_letters_,
                       KafkaDeadLetterSink::Create(options.settings, options.dlq_topic, &k->stop_));
      ASSIGN_OR_RETURN(k->events_,
                       KafkaEventSource::Create(options.settings, options.events, pipeline,
                                                &k->gate_, k->dead_letters_.get()));
      return absl::OkStatus();
    }();
  }).join();
  RETURN_IF_ERROR(created);
  KafkaIngest* self = k.get();
  // Catalog first, to its end; then events here and the catalog follower there.
  k->events_thread_ = std::thread([self, nice] {
    SetCurrentThreadName("hm-ingest");
    // Inherited by the catalog thread and the pipeline's threads started here.
    LowerIngestPriority(nice);
    absl::Status s = self->catalog_->Bootstrap(self->stop_);
    if (!s.ok()) {
      if (!self->stop_.load()) self->Fatal(s);
      return;
    }
    self->catalog_thread_ = std::thread([self] {
      SetCurrentThreadName("hm-catalog");
      absl::Status f = self->catalog_->Follow(self->stop_);
      if (!f.ok() && !self->stop_.load()) self->Fatal(f);
    });
    s = self->unique_ ? self->unique_->Run(self->stop_) : self->events_->Run(self->stop_);
    if (!s.ok() && !self->stop_.load()) self->Fatal(s);
  });
  return k;
}

void KafkaIngest::Fatal(absl::Status s) {
  pipeline_->SetSourceCondition(std::string(s.message()));
  if (!fatal_called_.exchange(true) && on_fatal_) on_fatal_(std::move(s));
}

void KafkaIngest::Stop() {
  stop_ = true;
  // The events thread starts the catalog thread: join it first.
  if (events_thread_.joinable()) events_thread_.join();
  if (catalog_thread_.joinable()) catalog_thread_.join();
}

KafkaIngest::~KafkaIngest() { Stop(); }

}  // namespace hubmetrics
