#include "apps/cluster.hpp"

#include <omp.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "apps/running.hpp"
#include "apps/units.hpp"
#include "engine/data.hpp"
#include "kernels/base/error.hpp"

#if IOTNAS_HAVE_MPI
#include <mpi.h>
#endif

namespace iotnas::apps {

namespace {

using nlohmann::json;

// Message tags. Rank 0 sends kPlan, kItem and kStop; a worker sends kReady once, then for each
// item kRecord (a finished unit, or a progress line) as it happens and kDone (or kError) at its
// end.
enum Tag { kPlan = 11, kReady, kItem, kStop, kRecord, kDone, kError };

// A message: a JSON head and two float arrays (a training run's weights and state, else empty).
struct Msg {
  int source = 0;
  int tag = 0;
  json head;
  std::vector<float> a, b;
};

void put_u64(std::string& out, uint64_t v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}

std::string encode(const json& head, const std::vector<float>& a, const std::vector<float>& b) {
  const std::string h = head.dump();
  std::string out;
  out.reserve(24 + h.size() + (a.size() + b.size()) * sizeof(float));
  put_u64(out, h.size());
  out += h;
  for (const auto* v : {&a, &b}) {
    put_u64(out, v->size());
    out.append(reinterpret_cast<const char*>(v->data()), v->size() * sizeof(float));
  }
  return out;
}

// Reads what encode wrote; a malformed message (which only a bug can make) is an internal error.
Msg decode(int source, int tag, const std::string& bytes) {
  Msg m;
  m.source = source;
  m.tag = tag;
  size_t at = 0;
  auto take = [&](size_t n) {
    if (bytes.size() - at < n) throw std::runtime_error("truncated MPI message");
    const char* p = bytes.data() + at;
    at += n;
    return p;
  };
  auto u64 = [&] {
    uint64_t v;
    std::memcpy(&v, take(sizeof v), sizeof v);
    return v;
  };
  const uint64_t h = u64();
  m.head = json::parse(std::string_view(take(h), h));
  for (auto* v : {&m.a, &m.b}) {
    const uint64_t n = u64();
    if (n > bytes.size() / sizeof(float)) throw std::runtime_error("truncated MPI message");
    v->resize(n);
    std::memcpy(v->data(), take(n * sizeof(float)), n * sizeof(float));
  }
  return m;
}

json run_head(const RunRow& r) {
  return {{"key", r.key},
          {"data", r.data},
          {"recipe_json", r.recipe_json},
          {"seed", r.seed},
          {"test_accuracy", r.test_accuracy},
          {"val_accuracy", r.val_accuracy},
          {"train_seconds", r.train_seconds},
          {"record_json", r.record_json},
          {"checkpoint_path", r.checkpoint_path}};
}

RunRow run_of(const json& j, std::vector<float> params, std::vector<float> state) {
  RunRow r;
  r.key = j.at("key");
  r.data = j.at("data");
  r.recipe_json = j.at("recipe_json");
  r.seed = j.at("seed");
  r.test_accuracy = j.at("test_accuracy");
  r.val_accuracy = j.at("val_accuracy");
  r.train_seconds = j.at("train_seconds");
  r.record_json = j.at("record_json");
  r.checkpoint_path = j.at("checkpoint_path");
  r.params = std::move(params);
  r.state = std::move(state);
  return r;
}

json accuracy_head(const AccuracyRow& a) {
  return {{"w", a.w},
          {"t", a.t},
          {"accuracy", a.accuracy},
          {"weight_bytes", a.weight_bytes},
          {"images", a.images},
          {"seconds", a.seconds}};
}

AccuracyRow accuracy_of(const json& j, const std::string& eval_key) {
  return {0,
          eval_key,
          j.at("w"),
          j.at("t"),
          j.at("accuracy"),
          j.at("weight_bytes"),
          j.at("images"),
          j.at("seconds")};
}

json sweep_head(const SweepRow& s) {
  return {{"float32_accuracy", s.float32_accuracy},
          {"images", s.images},
          {"inference_params", s.inference_params},
          {"best_w", s.best_w},
          {"best_t", s.best_t},
          {"tolerance", s.tolerance},
          {"seconds", s.seconds}};
}

SweepRow sweep_of(const json& j, const std::string& eval_key) {
  return {0,
          eval_key,
          j.at("float32_accuracy"),
          j.at("images"),
          j.at("inference_params"),
          j.at("best_w"),
          j.at("best_t"),
          j.at("tolerance"),
          j.at("seconds")};
}

json counts_head(const ItemCounts& n) {
  return {{"trained", n.trained},
          {"reused", n.reused},
          {"failed", n.failed},
          {"sweeps", n.sweeps},
          {"formats", n.formats},
          {"train_seconds", n.train_seconds},
          {"sweep_seconds", n.sweep_seconds}};
}

ItemCounts counts_of(const json& j) {
  ItemCounts n;
  n.trained = j.at("trained");
  n.reused = j.at("reused");
  n.failed = j.at("failed");
  n.sweeps = j.at("sweeps");
  n.formats = j.at("formats");
  n.train_seconds = j.at("train_seconds");
  n.sweep_seconds = j.at("sweep_seconds");
  return n;
}

// A worker's side of the conversation with rank 0.
class Channel {
 public:
  virtual ~Channel() = default;
  virtual void send(int tag, const json& head, const std::vector<float>& a = {},
                    const std::vector<float>& b = {}) = 0;
  virtual Msg wait() = 0;           // the next message from rank 0
  virtual bool stop_waiting() = 0;  // whether rank 0 has said stop (the message is taken)
};

// The worker's view of an item's units: the rows rank 0 sent with the item; every new row goes
// to rank 0 as a kRecord.
class ForwardUnits final : public UnitStore {
 public:
  ForwardUnits(int item, Msg& m, Channel& ch) : item_(item), ch_(ch) {
    if (!m.head.at("run").is_null()) run_ = run_of(m.head["run"], std::move(m.a), std::move(m.b));
    if (run_) run_->id = 1;
    for (const auto& a : m.head.at("accuracies")) acc_.push_back(accuracy_of(a, ""));
  }
  std::optional<RunRow> run(const std::string&, bool) override { return run_; }
  bool failed(const std::string&) override { return false; }          // rank 0 sends no failed item
  bool swept(int64_t, const std::string&) override { return false; }  // nor a swept one
  std::vector<AccuracyRow> accuracies(int64_t, const std::string&) override { return acc_; }
  int64_t put_run(RunRow row, const PlanModel&) override {
    send("run", run_head(row), row.params, row.state);
    run_ = std::move(row);
    run_->id = 1;
    return 1;
  }
  void put_failed(const std::string&, const PlanModel&, const std::string& error) override {
    send("failed", {{"error", error}});
  }
  // Accuracies go in batches (at most 64 rows or 2 s apart): rank 0 commits a batch in one
  // transaction, where one per row cost it a third of a millisecond each.
  void put_accuracy(const AccuracyRow& row) override {
    acc_.push_back(row);
    pending_.push_back(accuracy_head(row));
    if (pending_.size() >= 64 ||
        std::chrono::steady_clock::now() - flushed_ > std::chrono::seconds(2))
      flush();
  }
  void put_sweep(const SweepRow& row) override {
    flush();
    send("sweep", sweep_head(row));
  }
  void flush() {
    flushed_ = std::chrono::steady_clock::now();
    if (pending_.empty()) return;
    send("accuracies", {{"rows", pending_}});
    pending_ = json::array();
  }

 private:
  void send(const char* kind, json head, const std::vector<float>& a = {},
            const std::vector<float>& b = {}) {
    head["item"] = item_;
    head["kind"] = kind;
    ch_.send(kRecord, head, a, b);
  }
  int item_;
  Channel& ch_;
  std::optional<RunRow> run_;
  std::vector<AccuracyRow> acc_;
  json pending_ = json::array();
  std::chrono::steady_clock::time_point flushed_ = std::chrono::steady_clock::now();
};

// Runs the items rank 0 sends until it says stop. `x`: the run's context (its line, update and
// stopping are replaced here).
void worker_loop(const ItemContext& x, Channel& ch, const std::atomic<bool>* stop) {
  ch.send(kReady, {{"host", host_name()}, {"pid", int64_t(getpid())}});
  bool told = false;  // rank 0 said stop
  while (!told) {
    Msg m = ch.wait();
    if (m.tag == kStop) break;
    if (m.tag != kItem) continue;
    const int item = m.head.at("item");
    ForwardUnits units(item, m, ch);
    ItemContext xi{x.config, x.plan, x.backend, x.train_data, x.eval_set, {}, {}, {}};
    xi.line = [&](const std::string& s) {
      ch.send(kRecord, {{"item", item}, {"kind", "line"}, {"text", s}});
    };
    xi.stopping = [&] {
      if (!told && ch.stop_waiting()) told = true;
      return told || (stop && stop->load());
    };
    try {
      const ItemCounts n = run_item(xi, item, units);
      ch.send(kDone,
              {{"item", item}, {"counts", counts_head(n)}, {"stopping", stop && stop->load()}});
    } catch (const std::exception& e) {
      ch.send(kError, {{"item", item}, {"error", e.what()}});
    }
  }
}

// Rank 0's own worker thread: messages through queues instead of MPI.
class LocalChannel final : public Channel {
 public:
  void send(int tag, const json& head, const std::vector<float>& a = {},
            const std::vector<float>& b = {}) override {
    std::lock_guard<std::mutex> g(m_);
    out_.push_back({0, tag, head, a, b});
  }
  Msg wait() override {
    std::unique_lock<std::mutex> g(m_);
    cv_.wait(g, [&] { return !in_.empty(); });
    Msg m = std::move(in_.front());
    in_.pop_front();
    return m;
  }
  bool stop_waiting() override {
    std::lock_guard<std::mutex> g(m_);
    if (in_.empty() || in_.front().tag != kStop) return false;
    in_.pop_front();
    return true;
  }
  // Rank 0's side.
  void deliver(Msg m) {
    {
      std::lock_guard<std::mutex> g(m_);
      in_.push_back(std::move(m));
    }
    cv_.notify_one();
  }
  // Waits at most `seconds` for a message from the worker.
  void wait_out(double seconds) {
    std::unique_lock<std::mutex> g(m_);
    out_cv_.wait_for(g, std::chrono::duration<double>(seconds), [&] { return !out_.empty(); });
  }
  std::optional<Msg> take() {
    std::lock_guard<std::mutex> g(m_);
    if (out_.empty()) return std::nullopt;
    Msg m = std::move(out_.front());
    out_.pop_front();
    return m;
  }

 private:
  std::mutex m_;
  std::condition_variable cv_, out_cv_;
  std::deque<Msg> in_, out_;
};

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

void nap(double seconds) {
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
}

#if IOTNAS_HAVE_MPI

void mpi_send(int to, int tag, const std::string& bytes) {
  if (bytes.size() > size_t(INT32_MAX))
    fail("a message of ", bytes.size(), " bytes is more than MPI can send at once (2 GiB)");
  MPI_Send(bytes.data(), int(bytes.size()), MPI_BYTE, to, tag, MPI_COMM_WORLD);
}

// The message that MPI_Iprobe found.
Msg mpi_receive(const MPI_Status& st) {
  int n = 0;
  MPI_Get_count(&st, MPI_BYTE, &n);
  std::string bytes(size_t(n), '\0');
  MPI_Recv(bytes.data(), n, MPI_BYTE, st.MPI_SOURCE, st.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  return decode(st.MPI_SOURCE, st.MPI_TAG, bytes);
}

std::optional<Msg> mpi_poll(int source, int tag) {
  int flag = 0;
  MPI_Status st;
  MPI_Iprobe(source, tag, MPI_COMM_WORLD, &flag, &st);
  if (!flag) return std::nullopt;
  return mpi_receive(st);
}

// A worker rank's channel to rank 0. Waiting polls and sleeps, so that a waiting rank leaves its
// core to the others (MPI's own blocking receive spins).
class MpiChannel final : public Channel {
 public:
  void send(int tag, const json& head, const std::vector<float>& a = {},
            const std::vector<float>& b = {}) override {
    mpi_send(0, tag, encode(head, a, b));
  }
  Msg wait() override {
    for (double pause = 1e-4;; pause = std::min(pause * 2, 0.02)) {
      if (auto m = mpi_poll(0, MPI_ANY_TAG)) return std::move(*m);
      nap(pause);
    }
  }
  bool stop_waiting() override { return mpi_poll(0, kStop).has_value(); }
};

#endif

// Rank 0's hand-out of the items to the ranks (slot 0: its own worker thread).
class Dispatcher {
 public:
  Dispatcher(const ItemContext& x, Store& store, RunSummary& sum, int size)
      : x_(x), store_(store), sum_(sum), slots_(size_t(size)) {}

  void run(int threads, DispatchStats& stats) {
    const double cpu0 = thread_cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    queue_items();
    send_plan();
    std::thread local([&] {
      if (threads > 0) omp_set_num_threads(threads);
      worker_loop(x_, local_, nullptr);
    });
    try {
      loop();
    } catch (...) {
      if (error_.empty()) error_ = "rank 0 failed while handing out work";
      stop_all();
      local.join();
      throw;
    }
    local.join();
    stats.ranks = int(slots_.size());
    for (const Slot& s : slots_) stats.units_per_rank.push_back(s.units);
    stats.cpu_seconds = thread_cpu_seconds() - cpu0;
    stats.busy_cpu_seconds = busy_cpu_;
    stats.wall_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!error_.empty()) fail(error_);
  }

 private:
  struct Slot {
    bool ready = false, busy = false, told = false;  // told: stop was sent
    int item = -1;
    int units = 0;
    std::string host;
    int64_t pid = 0;
  };

  // The items not finished yet, largest first (the last ones to start are the short ones).
  void queue_items() {
    StoreUnits units(store_);
    std::vector<std::pair<double, int>> todo;
    for (int i = 0; i < item_count(x_.plan); ++i) {
      const std::string& key = item_key(x_.plan, i);
      if (units.failed(key)) continue;
      if (auto r = store_.run_by_key(key, false); r && units.swept(r->id, x_.plan.eval_key)) {
        sum_.reused++;
        continue;
      }
      todo.push_back({item_cost(x_.plan, x_.config, i), i});
    }
    std::stable_sort(todo.begin(), todo.end(),
                     [](const auto& a, const auto& b) { return a.first > b.first; });
    for (const auto& [cost, i] : todo) queue_.push_back(i);
  }

  void send_plan() {
#if IOTNAS_HAVE_MPI
    const std::string bytes = encode({{"plan", plan_to_json({x_.plan, x_.config})}}, {}, {});
    for (size_t r = 1; r < slots_.size(); ++r) mpi_send(int(r), kPlan, bytes);
#endif
  }

  void send(size_t slot, int tag, const json& head, const std::vector<float>& a = {},
            const std::vector<float>& b = {}) {
    if (slot == 0) {
      local_.deliver({0, tag, head, a, b});
      return;
    }
#if IOTNAS_HAVE_MPI
    mpi_send(int(slot), tag, encode(head, a, b));
#endif
  }

  void tell_stop(size_t slot) {
    if (slots_[slot].told) return;
    slots_[slot].told = true;
    send(slot, kStop, json::object());
  }

  void stop_all() {
    for (size_t s = 0; s < slots_.size(); ++s) tell_stop(s);
  }

  // Sends item i with what the store holds of it: a finished training run (with its weights) and
  // the accuracies of its sweep so far.
  void hand_out(size_t slot, int item) {
    const std::string& key = item_key(x_.plan, item);
    json head = {{"item", item}, {"run", nullptr}, {"accuracies", json::array()}};
    std::vector<float> params, state;
    if (auto r = store_.run_by_key(key, true)) {
      head["run"] = run_head(*r);
      params = std::move(r->params);
      state = std::move(r->state);
      for (const auto& a : store_.accuracies(r->id, x_.plan.eval_key))
        head["accuracies"].push_back(accuracy_head(a));
    }
    Slot& s = slots_[slot];
    s.busy = true;
    s.item = item;
    mark_running(store_, key, "rank " + std::to_string(slot), s.host, s.pid);
    send(slot, kItem, head, params, state);
  }

  bool stopping() const {
    return !error_.empty() || (x_.stopping && x_.stopping());
  }

  void assign() {
    for (size_t s = 0; s < slots_.size(); ++s) {
      Slot& slot = slots_[s];
      if (slot.told) continue;
      if (stopping()) {
        tell_stop(s);  // a busy rank stops after the unit in hand
      } else if (slot.ready && !slot.busy && queue_.empty()) {
        tell_stop(s);
      } else if (slot.ready && !slot.busy) {
        hand_out(s, queue_.front());
        queue_.pop_front();
      }
    }
  }

  bool finished() const {
    for (const Slot& s : slots_)
      if (!s.told || s.busy || !s.ready) return false;
    return true;
  }

  void apply_record(const Msg& m) {
    const int item = m.head.at("item");
    const std::string kind = m.head.at("kind");
    const std::string& key = item_key(x_.plan, item);
    const PlanModel& model = x_.plan.models[size_t(x_.plan.candidates[size_t(item)])];
    StoreUnits units(store_);
    if (kind == "line") {
      if (x_.line)
        x_.line(m.head.at("text").get<std::string>() + " [rank " + std::to_string(m.source) + "]");
    } else if (kind == "run") {
      units.put_run(run_of(m.head, m.a, m.b), model);
    } else if (kind == "failed") {
      units.put_failed(key, model, m.head.at("error"));
    } else {
      const auto run = store_.run_by_key(key, false);
      if (!run) throw std::runtime_error("a " + kind + " record before its training run");
      if (kind == "accuracies") {
        store_.transaction([&] {
          for (const auto& row : m.head.at("rows")) {
            AccuracyRow a = accuracy_of(row, x_.plan.eval_key);
            a.run_id = run->id;
            units.put_accuracy(a);
          }
        });
      } else {
        SweepRow s = sweep_of(m.head, x_.plan.eval_key);
        s.run_id = run->id;
        units.put_sweep(s);
      }
    }
  }

  void handle(const Msg& m) {
    Slot& s = slots_[size_t(m.source)];
    switch (m.tag) {
      case kReady:
        s.ready = true;
        s.host = m.head.value("host", "");
        s.pid = m.head.value("pid", int64_t(0));
        break;
      case kRecord:
        apply_record(m);
        break;
      case kDone: {
        const ItemCounts n = counts_of(m.head.at("counts"));
        add_counts(sum_, n);
        s.units += n.trained + n.failed + n.sweeps;
        finish(s);
        if (m.head.value("stopping", false)) tell_stop(size_t(m.source));
        break;
      }
      case kError:
        if (error_.empty())
          error_ = "rank " + std::to_string(m.source) + ": " + m.head.value("error", "?");
        s.ready = true;
        finish(s);
        break;
      default:
        break;
    }
  }

  void finish(Slot& s) {
    if (!s.busy) return;
    clear_running(store_, item_key(x_.plan, s.item));
    s.busy = false;
    s.item = -1;
    done_++;
    if (x_.update)
      x_.update("mpi: " + std::to_string(done_) + " items done, " + std::to_string(queue_.size()) +
                " waiting");
  }

  // Handles what has arrived; false when nothing had.
  bool receive() {
    bool any = false;
    while (auto m = local_.take()) {
      handle(*m);
      any = true;
    }
#if IOTNAS_HAVE_MPI
    while (auto m = mpi_poll(MPI_ANY_SOURCE, MPI_ANY_TAG)) {
      handle(*m);
      any = true;
    }
#endif
    return any;
  }

  // Hands out and receives until every rank is told to stop and idle. With nothing to do it waits,
  // longer each time up to 50 ms (MPI's blocking receive would spin on the core), or until rank 0's
  // own worker posts a message.
  void loop() {
    double pause = 1e-4;
    while (true) {
      const double cpu = thread_cpu_seconds();
      assign();
      if (finished()) break;
      if (receive()) {
        pause = 1e-4;
        busy_cpu_ += thread_cpu_seconds() - cpu;
      } else {
        local_.wait_out(pause);
        pause = std::min(pause * 2, 0.05);
      }
    }
  }

  const ItemContext& x_;
  Store& store_;
  RunSummary& sum_;
  std::vector<Slot> slots_;
  std::deque<int> queue_;
  LocalChannel local_;
  std::string error_;
  int done_ = 0;
  double busy_cpu_ = 0;  // in hand-outs and message handling, without the idle waits
};

}  // namespace

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (std::getenv(v)) return true;
  return false;
}

bool mpi_built() {
  return IOTNAS_HAVE_MPI != 0;
}

#if IOTNAS_HAVE_MPI

MpiJob::MpiJob() {
  int provided = 0;
  MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
}

MpiJob::~MpiJob() {
  MPI_Finalize();
}

void MpiJob::release_workers() {
  if (rank_ != 0 || released_) return;
  released_ = true;
  const std::string bytes = encode(json::object(), {}, {});
  for (int r = 1; r < size_; ++r) mpi_send(r, kStop, bytes);
}

int MpiJob::work(int threads, const std::atomic<bool>* stop) {
  MpiChannel ch;
  Msg m = ch.wait();
  if (m.tag != kPlan) return 0;  // no plan: rank 0 ended before (an error, --plan-only)
  PlanDoc doc;
  Dataset data, train_data;
  EvalSet eval;
  try {
    doc = plan_from_json(m.head.at("plan"), "the plan from rank 0");
    if (threads > 0) doc.config.threads = threads;
    if (doc.config.threads > 0) omp_set_num_threads(doc.config.threads);
    data = load_dataset(doc.config.dataset);
    train_data = training_subset(data, doc.config.training.train_images);
    eval = run_eval_set(doc.config, data);
  } catch (const std::exception& e) {
    ch.send(kError, {{"error", std::string("on ") + host_name() + ": " + e.what()}});
    while (ch.wait().tag != kStop) {
    }
    return 1;
  }
  const ItemContext x{doc.config, doc.plan, parse_backend(doc.config.backend), train_data, eval, {},
                      {},         {}};
  worker_loop(x, ch, stop);
  return 0;
}

#else

MpiJob::MpiJob() {
  fail(
      "this iotnas was built without MPI (IOTNAS_MPI=OFF or no MPI found): rebuild it against "
      "the cluster's MPI (Debian: apt-get install libopenmpi-dev; docs/cluster.md), or run "
      "without mpirun/srun, or use --shard for job arrays");
}

MpiJob::~MpiJob() = default;

void MpiJob::release_workers() {}

int MpiJob::work(int, const std::atomic<bool>*) {
  return 1;
}

#endif

Executor MpiJob::executor(int threads, DispatchStats& stats) {
  return [this, threads, &stats](const ItemContext& x, Store& store, RunSummary& sum) {
    released_ = true;  // the workers get the plan, then a stop from the hand-out
    Dispatcher(x, store, sum, size_).run(threads, stats);
    store.put_artifact("mpi", "dispatch",
                       json({{"ranks", stats.ranks},
                             {"units_per_rank", stats.units_per_rank},
                             {"cpu_seconds", stats.cpu_seconds},
                             {"busy_cpu_seconds", stats.busy_cpu_seconds},
                             {"wall_seconds", stats.wall_seconds}})
                           .dump());
  };
}

}  // namespace iotnas::apps
