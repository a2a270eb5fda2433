#include "apps/slurm.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <thread>

#include "engine/util/files.hpp"
#include "kernels/base/error.hpp"

namespace iotnas::apps {
namespace fs = std::filesystem;

namespace {

// Partition and account names: no shell or #SBATCH metacharacters (a partition list has commas).
bool plain_name(const std::string& s, bool comma) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [&](unsigned char c) {
    return std::isalnum(c) || c == '_' || c == '-' || c == '.' || (comma && c == ',');
  });
}

// #SBATCH lines are split at white space and expand '%': the run directory may have neither.
bool sbatch_safe_path(const std::string& s) {
  return s.find_first_of(" \t\n\r%\"'\\") == std::string::npos;
}

// `s` as one shell word.
std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string absolute(const std::string& p) {
  return fs::absolute(p).lexically_normal().string();
}

// Reads digits at `pos` (advancing it) as a number; -1 when there are none.
long read_number(std::string_view s, size_t& pos) {
  const size_t start = pos;
  long v = 0;
  while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9' && pos - start < 9) {
    v = v * 10 + (s[pos++] - '0');
  }
  return pos == start ? -1 : v;
}

bool expect(std::string_view s, size_t& pos, char c) {
  if (pos >= s.size() || s[pos] != c) return false;
  ++pos;
  return true;
}

// ---- running a program without a shell ----

struct ProcessResult {
  bool not_found = false;  // exec failed with ENOENT
  int status = -1;         // exit status; 128 + signal when killed
  std::string out, err;
};

// Drains `out_fd` and `err_fd` together (a full pipe would block the child).
void drain(int out_fd, int err_fd, std::string& out, std::string& err) {
  pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
  std::string* dst[2] = {&out, &err};
  int open = 2;
  char buf[4096];
  while (open > 0) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        dst[i]->append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        fds[i].fd = -1;
        --open;
      }
    }
  }
}

// Runs argv[0] (looked up on PATH) with `argv`; returns its exit status and output.
ProcessResult run_program(const std::vector<std::string>& argv) {
  int out[2], err[2], exec_errno[2];
  if (::pipe(out) != 0 || ::pipe(err) != 0 || ::pipe2(exec_errno, O_CLOEXEC) != 0) {
    fail("cannot start ", argv[0], ": ", std::strerror(errno));
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) fail("cannot start ", argv[0], ": fork failed: ", std::strerror(errno));
  if (pid == 0) {
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    ::close(out[0]), ::close(err[0]), ::close(out[1]), ::close(err[1]), ::close(exec_errno[0]);
    ::execvp(args[0], args.data());
    const int e = errno;
    (void)!::write(exec_errno[1], &e, sizeof e);
    ::_exit(127);
  }
  ::close(out[1]), ::close(err[1]), ::close(exec_errno[1]);
  ProcessResult r;
  drain(out[0], err[0], r.out, r.err);
  ::close(out[0]), ::close(err[0]);
  int e = 0;
  const bool exec_failed = ::read(exec_errno[0], &e, sizeof e) == sizeof e;
  ::close(exec_errno[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  r.not_found = exec_failed && (e == ENOENT || e == EACCES || e == ENOTDIR);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

std::string first_line(const std::string& s) {
  std::string line;
  std::istringstream in(s);
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") != std::string::npos) return line;
  }
  return "";
}

// ---- the scripts ----

struct CpusPerNode {
  int cpus = 0;
  std::string source;  // for the script's comment
};

// The smallest node of the partition as sinfo sees it, else this machine.
CpusPerNode cpus_per_node(const SlurmOptions& o) {
  if (o.cpus_per_node > 0) return {o.cpus_per_node, "given"};
  std::vector<std::string> argv = {"sinfo", "--noheader", "--format=%c"};
  if (!o.partition.empty()) argv.push_back("--partition=" + o.partition);
  const ProcessResult r = run_program(argv);
  int cpus = 0;
  if (r.status == 0) {
    std::istringstream in(r.out);
    for (int c = 0; in >> c;) cpus = cpus == 0 ? c : std::min(cpus, c);
  }
  if (cpus > 0) return {cpus, "the smallest node of the partition (sinfo)"};
  if (r.status == 0) fail("--partition ", o.partition, ": sinfo lists no nodes in it");
  const int here = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return {here, "this machine's (no answer from sinfo)"};
}

int threads_of(const SlurmOptions& o) {
  return o.threads > 0 ? o.threads : 1;
}

// The #SBATCH lines every job has.
void common_header(std::ostringstream& s, const SlurmOptions& o, const std::string& job_name,
                   const std::string& output) {
  s << "#SBATCH --job-name=" << job_name << "\n";
  if (!o.partition.empty()) s << "#SBATCH --partition=" << o.partition << "\n";
  if (!o.account.empty()) s << "#SBATCH --account=" << o.account << "\n";
  s << "#SBATCH --output=" << absolute(o.run_dir) << "/slurm/" << output << "\n";
  s << "#SBATCH --open-mode=append\n";
}

// Seconds added to an estimate for the clean stop: the signal may come 60 s earlier than asked.
constexpr int kStopMarginSeconds = kStopSignalSeconds + 60;

// The time limit and the stop signal of a job that runs `iotnas run`.
void time_lines(std::ostringstream& s, const SlurmOptions& o, const SlurmTimeEstimate& e) {
  std::string limit = o.time;
  if (limit.empty()) {
    s << "# time limit: estimated from " << e.source << " (" << format_slurm_time(e.seconds)
      << "), plus " << kStopMarginSeconds / 60 << " min for the clean stop\n";
    limit = format_slurm_time(e.seconds + kStopMarginSeconds);
  }
  s << "#SBATCH --time=" << limit << "\n";
  s << "#SBATCH --signal=TERM@" << kStopSignalSeconds << "\n";
  s << "#SBATCH --requeue\n";
}

// `iotnas run`'s arguments common to both modes.
std::string run_args(const SlurmOptions& o) {
  std::string a;
  if (!o.config.empty()) a += " --config " + quote(absolute(o.config));
  if (!o.budget.empty()) a += " --budget " + quote(o.budget);
  return a + " --out " + quote(absolute(o.run_dir)) + " --threads \"$SLURM_CPUS_PER_TASK\"";
}

// After the run: exit 75 is a clean stop at the time limit (or a signal); the rerun continues.
std::string requeue_tail(const std::string& job_id) {
  std::ostringstream s;
  s << "rc=$?\n"
    << "# 75: stopped cleanly before the time limit; the requeued job finishes the rest.\n"
    << "if [ \"$rc\" -eq 75 ] && [ \"${SLURM_RESTART_COUNT:-0}\" -lt " << kMaxRequeues
    << " ]; then\n"
    << "  scontrol requeue \"" << job_id << "\"\n"
    << "fi\n"
    << "exit \"$rc\"\n";
  return s.str();
}

std::string mpi_script(const SlurmOptions& o, const SlurmTimeEstimate& e) {
  const CpusPerNode node = cpus_per_node(o);
  const int threads = threads_of(o);
  if (threads > node.cpus) {
    fail("--threads ", threads, ": more than the ", node.cpus, " CPUs of a node (", node.source,
         ")");
  }
  std::ostringstream s;
  s << "#!/bin/bash\n"
    << "# iotnas run over " << o.nodes << " node(s) with MPI, one rank per " << threads
    << " CPU(s) (written by `iotnas slurm`, docs/cluster.md).\n"
    << "# CPUs per node: " << node.cpus << ", " << node.source << ".\n";
  common_header(s, o, "iotnas-run", "%x-%j.out");
  s << "#SBATCH --nodes=" << o.nodes << "\n"
    << "#SBATCH --ntasks-per-node=" << node.cpus / threads << "\n"
    << "#SBATCH --cpus-per-task=" << threads << "\n";
  time_lines(s, o, e);
  s << "srun --mpi=pmix " << quote(absolute(o.iotnas)) << " run" << run_args(o) << "\n"
    << requeue_tail("$SLURM_JOB_ID");
  return s.str();
}

std::string shards_script(const SlurmOptions& o, const SlurmTimeEstimate& e) {
  std::ostringstream s;
  s << "#!/bin/bash\n"
    << "# iotnas run as " << o.array << " shard(s), one per array task (written by `iotnas "
    << "slurm`, docs/cluster.md).\n";
  common_header(s, o, "iotnas-shard", "%x-%A_%a.out");
  s << "#SBATCH --array=0-" << o.array - 1 << "\n"
    << "#SBATCH --ntasks=1\n"
    << "#SBATCH --cpus-per-task=" << threads_of(o) << "\n";
  time_lines(s, o, e);
  // --mpi=none: a cluster whose default is pmix would otherwise make each shard a 1-rank MPI job.
  s << "srun --mpi=none " << quote(absolute(o.iotnas)) << " run --shard \"$SLURM_ARRAY_TASK_ID/"
    << o.array << "\"" << run_args(o) << "\n"
    << requeue_tail("${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}");
  return s.str();
}

std::string merge_script(const SlurmOptions& o) {
  std::ostringstream s;
  s << "#!/bin/bash\n"
    << "# Folds the shards into the run's store (written by `iotnas slurm`, docs/cluster.md);\n"
    << "# submitted with --dependency=afterok:<the shards' job id>.\n";
  common_header(s, o, "iotnas-merge", "%x-%j.out");
  s << "#SBATCH --ntasks=1\n"
    << "#SBATCH --cpus-per-task=1\n"
    << "#SBATCH --time=01:00:00\n"
    << "#SBATCH --kill-on-invalid-dep=yes\n"
    << "exec " << quote(absolute(o.iotnas)) << " merge --run " << quote(absolute(o.run_dir))
    << "\n";
  return s.str();
}

// Submits one script; returns its job id.
std::string sbatch(const std::string& path, const std::string& dependency) {
  std::vector<std::string> argv = {"sbatch", "--parsable"};
  if (!dependency.empty()) argv.push_back("--dependency=afterok:" + dependency);
  argv.push_back(path);
  const ProcessResult r = run_program(argv);
  if (r.not_found) {
    fail("sbatch not found: install slurm-client (Debian) or load the cluster's Slurm module");
  }
  const std::string id = first_line(r.out).substr(0, first_line(r.out).find(';'));
  if (r.status != 0 || id.empty() ||
      !std::all_of(id.begin(), id.end(), [](unsigned char c) { return std::isdigit(c); })) {
    const std::string why = first_line(r.err).empty() ? first_line(r.out) : first_line(r.err);
    fail("sbatch ", path, " failed (exit status ", r.status, "): ", why);
  }
  return id;
}

}  // namespace

void validate(const SlurmOptions& o) {
  if (o.run_dir.empty()) fail("--out is required: the run directory the jobs write");
  if (!sbatch_safe_path(absolute(o.run_dir))) {
    fail("--out ", o.run_dir,
         ": #SBATCH lines cannot hold a path with spaces, quotes, backslashes or '%'; choose "
         "another folder");
  }
  if (o.iotnas.empty()) fail("the iotnas binary for the jobs is not known");
  if (o.nodes < 0) fail("--nodes ", o.nodes, ": give at least 1 node");
  if (o.array < 0) fail("--array ", o.array, ": give at least 1 shard");
  if ((o.nodes > 0) == (o.array > 0)) {
    fail(o.nodes > 0 ? "--nodes and --array exclude each other"
                     : "give --nodes K (one MPI job over K nodes) or --array N (N shards and a "
                       "merge job)");
  }
  if (o.threads < 0) fail("--threads ", o.threads, ": give at least 1, or 0 for one per rank");
  if (!o.time.empty() && parse_slurm_time(o.time) < 300) {
    fail("--time ", o.time, ": give at least 00:05:00 (the stop signal comes ",
         kStopSignalSeconds / 60, " to ", kStopSignalSeconds / 60 + 1,
         " minutes before the limit)");
  }
  if (!o.partition.empty() && !plain_name(o.partition, true)) {
    fail("--partition '", o.partition, "': letters, digits, '_', '-', '.' and ',' only");
  }
  if (!o.account.empty() && !plain_name(o.account, false)) {
    fail("--account '", o.account, "': letters, digits, '_', '-' and '.' only");
  }
}

std::string format_slurm_time(double seconds) {
  if (!std::isfinite(seconds)) fail("time limit estimate ", seconds, " s: not a finite number");
  const long minutes = std::max(5L, static_cast<long>(std::ceil(seconds / 60 - 1e-9)));
  const long days = minutes / (24 * 60), hours = minutes / 60 % 24, mins = minutes % 60;
  char buf[48];
  if (days > 0) {
    std::snprintf(buf, sizeof buf, "%ld-%02ld:%02ld:00", days, hours, mins);
  } else {
    std::snprintf(buf, sizeof buf, "%02ld:%02ld:00", hours, mins);
  }
  return buf;
}

double parse_slurm_time(std::string_view text) {
  size_t pos = 0;
  long days = 0, hours = read_number(text, pos);
  if (hours >= 0 && pos < text.size() && text[pos] == '-') {
    days = hours;
    ++pos;
    hours = read_number(text, pos);
    if (hours >= 24) hours = -1;
  }
  const size_t m_at = pos + 1;
  long minutes = -1, secs = -1;
  if (expect(text, pos, ':')) minutes = read_number(text, pos);
  const size_t s_at = pos + 1;
  if (expect(text, pos, ':')) secs = read_number(text, pos);
  const bool two_digits = pos - s_at == 2 && s_at - m_at == 3;
  if (hours < 0 || minutes < 0 || minutes >= 60 || secs < 0 || secs >= 60 || !two_digits ||
      pos != text.size()) {
    fail("--time '", text, "': give HH:MM:SS or D-HH:MM:SS (e.g. 04:00:00 or 2-00:00:00)");
  }
  const double total = ((days * 24.0 + hours) * 60 + minutes) * 60 + secs;
  if (total <= 0) fail("--time '", text, "': give a time limit above zero");
  return total;
}

std::vector<SlurmScript> slurm_scripts(const SlurmOptions& o, const SlurmTimeEstimate& estimate) {
  validate(o);
  if (o.nodes > 0) return {{"run.sbatch", mpi_script(o, estimate)}};
  return {{"shards.sbatch", shards_script(o, estimate)}, {"merge.sbatch", merge_script(o)}};
}

SlurmSubmission submit(const SlurmOptions& o, const std::vector<SlurmScript>& scripts) {
  const fs::path dir = fs::path(absolute(o.run_dir)) / "slurm";
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("--out ", o.run_dir, ": cannot create ", dir.string(), ": ", ec.message());
  SlurmSubmission out;
  for (const auto& s : scripts) {
    out.paths.push_back((dir / s.name).string());
    write_file_atomic(out.paths.back(), s.text);
  }
  if (o.dry_run) return out;
  // Only the merge job waits, for the shards (the job before it).
  for (const auto& path : out.paths) {
    const bool merge = fs::path(path).filename() == "merge.sbatch";
    out.job_ids.push_back(sbatch(path, merge && !out.job_ids.empty() ? out.job_ids.back() : ""));
  }
  return out;
}

}  // namespace iotnas::apps
