// SPDX-License-Identifier: BSD-3-Clause
#include "differential/runner.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <sstream>

#include "differential/generator.h"

namespace pmemfs::difftest {

namespace {

using Clock_ = std::chrono::steady_clock;

double Since(Clock_::time_point t) { return std::chrono::duration<double>(Clock_::now() - t).count(); }

void Add(Stats* a, const Stats& b) {
  a->ops += b.ops, a->enospc_modelled += b.enospc_modelled, a->short_modelled += b.short_modelled;
  a->remounts += b.remounts, a->kills += b.kills, a->checks += b.checks;
  a->t_pmem += b.t_pmem, a->t_ref += b.t_ref, a->t_check += b.t_check, a->t_remount += b.t_remount;
  a->t_view += b.t_view, a->t_setup += b.t_setup;
}

std::string Numbered(const std::vector<std::string>& lines) {
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    char num[32];
    std::snprintf(num, sizeof num, "%4zu. ", i + 1);
    out += num + lines[i] + "\n";
  }
  return out;
}

// What keep-going mode reports once: the signature without the call's name, so that one
// bug showing through many calls ("result of write (pmemfs EIO, reference ok)", "result of
// fstat (pmemfs EIO, ...)") is minimised once. Minimisation itself keeps the full signature.
std::string Family(const std::string& sig) {
  for (const char* prefix : {"result of ", "data of ", "stat after ", "times changed by ", "hang in ", "after ENOSPC in "}) {
    std::string p = prefix;
    if (sig.rfind(p, 0) != 0) continue;
    size_t end = sig.find(' ', p.size());
    return p + "*" + (end == std::string::npos ? "" : sig.substr(end));
  }
  return sig;
}

}  // namespace

std::optional<Divergence> Replay(const std::vector<Op>& ops, const Config& cfg, std::vector<std::string>* trace,
                                 std::vector<size_t>* not_run) {
  Harness h(cfg);
  if (auto d = h.Setup()) return d;
  h.set_trace(trace);
  std::optional<Divergence> d;
  for (size_t i = 0; i < ops.size() && !d; ++i) d = h.Run(ops[i], i);
  if (!d) d = h.Finish(ops.size());
  if (not_run) *not_run = h.not_run();
  return d;
}

std::vector<Op> Minimise(std::vector<Op> ops, const std::string& signature, const Config& cfg, double budget_s,
                         int* replays) {
  auto start = Clock_::now();
  *replays = 0;
  auto fails = [&](const std::vector<Op>& c) {
    ++*replays;
    auto d = Replay(c, cfg);
    return d && d->signature == signature;
  };
  // Calls on a descriptor slot the worker never opened did nothing on either side.
  {
    std::vector<size_t> idle;
    ++*replays;
    auto d = Replay(ops, cfg, nullptr, &idle);
    if (d && d->signature == signature && !idle.empty()) {
      std::vector<Op> rest;
      for (size_t i = 0, j = 0; i < ops.size(); ++i) {
        if (j < idle.size() && idle[j] == i) ++j;
        else rest.push_back(ops[i]);
      }
      if (fails(rest)) ops = std::move(rest);
    }
  }
  // First whole kinds of calls at once (most sequences need two or three kinds of the
  // forty), the commonest first: cheap, and it leaves ddmin a much shorter list.
  std::map<Kind, size_t> count;
  for (const Op& op : ops) count[op.kind]++;
  std::vector<std::pair<size_t, Kind>> kinds;
  for (auto& [k, c] : count) kinds.push_back({c, k});
  std::sort(kinds.rbegin(), kinds.rend());
  for (auto& [c, k] : kinds) {
    if (Since(start) >= budget_s || ops.size() < 2) break;
    std::vector<Op> rest;
    for (const Op& op : ops)
      if (op.kind != k) rest.push_back(op);
    if (rest.size() < ops.size() && !rest.empty() && fails(rest)) ops = std::move(rest);
  }
  // ddmin: try removing each of n chunks; on success keep the rest and coarsen, else refine.
  size_t n = 2;
  while (ops.size() >= 2 && Since(start) < budget_s) {
    size_t chunk = (ops.size() + n - 1) / n;
    bool removed = false;
    for (size_t i = 0; i < n && i * chunk < ops.size() && Since(start) < budget_s; ++i) {
      std::vector<Op> rest(ops.begin(), ops.begin() + static_cast<long>(i * chunk));
      rest.insert(rest.end(), ops.begin() + static_cast<long>(std::min(ops.size(), (i + 1) * chunk)), ops.end());
      if (fails(rest)) {
        ops = std::move(rest);
        n = std::max<size_t>(n - 1, 2);
        removed = true;
        break;
      }
    }
    if (!removed) {
      if (n >= ops.size()) break;
      n = std::min(ops.size(), n * 2);
    }
  }
  // 1-minimal: no single op can go (ddmin ends there when the budget allows; this pass
  // makes sure after a budget-limited coarse phase too).
  for (size_t i = ops.size(); i-- > 0 && ops.size() > 1 && Since(start) < budget_s;) {
    std::vector<Op> rest = ops;
    rest.erase(rest.begin() + static_cast<long>(i));
    if (fails(rest)) ops = std::move(rest);
  }
  return ops;
}

RunOptions OptionsFromEnv(double default_seconds) {
  constexpr uint64_t kDefaultSeed = 20261126;
  constexpr uint64_t kDefaultEpochs = 40;
  RunOptions o;
  auto env = [](const char* name) -> const char* { return std::getenv(name); };
  // The CI gate replays the same epochs on every machine (kDefaultSeed, at most
  // kDefaultEpochs of them); exploring new sequences is PMEMFS_DIFF_SEED=random.
  const char* seed = env("PMEMFS_DIFF_SEED");
  if (!seed) {
    o.seed = kDefaultSeed;
    o.max_epochs = kDefaultEpochs;
  } else if (std::string(seed) == "random") {
    o.seed = std::random_device{}();
  } else {
    o.seed = std::strtoull(seed, nullptr, 10);
  }
  if (env("PMEMFS_DIFF_EPOCHS")) o.max_epochs = std::strtoull(env("PMEMFS_DIFF_EPOCHS"), nullptr, 10);
  o.seconds = env("PMEMFS_DIFF_SECONDS") ? std::atof(env("PMEMFS_DIFF_SECONDS")) : default_seconds;
  if (env("PMEMFS_DIFF_EPOCH_OPS")) o.max_epoch_ops = std::strtoull(env("PMEMFS_DIFF_EPOCH_OPS"), nullptr, 10);
  if (env("PMEMFS_DIFF_MINIMISE_SECONDS")) o.minimise_seconds = std::atof(env("PMEMFS_DIFF_MINIMISE_SECONDS"));
  o.keep_going = env("PMEMFS_DIFF_KEEP_GOING") && std::atoi(env("PMEMFS_DIFF_KEEP_GOING")) != 0;
  if (const char* k = env("PMEMFS_DIFF_KNOWN")) {
    std::string s = k;
    for (size_t pos = 0; pos <= s.size();) {
      size_t end = s.find(';', pos);
      if (end == std::string::npos) end = s.size();
      if (end > pos) o.known.push_back(s.substr(pos, end - pos));
      pos = end + 1;
    }
  }
  if (env("PMEMFS_DIFF_REGION_MB")) o.config.region_bytes = std::strtoull(env("PMEMFS_DIFF_REGION_MB"), nullptr, 10) << 20;
  return o;
}

RunResult RunRandom(const RunOptions& opts) {
  RunResult res;
  auto start = Clock_::now();
  double minimising = 0;  // time spent replaying, not counted in the budget
  std::vector<std::string> families;  // of the divergences reported
  auto left = [&] { return Since(start) - minimising < opts.seconds; };
  SweepStale();
  for (uint64_t epoch = 0; left() && (opts.max_epochs == 0 || epoch < opts.max_epochs); ++epoch) {
    const uint64_t seed = opts.seed + epoch;
    std::mt19937_64 len_rng(seed ^ 0x5eed);
    const uint64_t n = opts.max_epoch_ops / 2 + len_rng() % (opts.max_epoch_ops / 2 + 1);
    std::vector<Op> ops;
    std::optional<Divergence> d;
    Stats stats;
    {
      Harness h(opts.config);
      d = h.Setup();
      if (!d) {
        Generator gen(seed);
        for (uint64_t i = 0; i < n && left(); ++i) {
          ops.push_back(gen.Next(h));
          if ((d = h.Run(ops.back(), ops.size() - 1))) break;
        }
        if (!d) d = h.Finish(ops.size());
        if (d) d->detail += "\n  daemon log (last lines):\n" + h.DaemonLogTail(15);
      }
      stats = h.stats();
    }
    res.epochs++;
    Add(&res.totals, stats);
    res.ops += ops.size();
    if (!d) continue;

    res.failed = true;
    bool seen = std::find(families.begin(), families.end(), Family(d->signature)) != families.end();
    bool known = false;
    for (const auto& k : opts.known) known |= d->signature.find(k) != std::string::npos;
    std::ostringstream r;
    r << "\n=== pmemfs differential tester: DIVERGENCE ===\n"
      << "seed " << seed << " (epoch " << epoch << " of the run started with PMEMFS_DIFF_SEED=" << opts.seed
      << "; PMEMFS_DIFF_SEED=" << seed << " repeats this epoch first)\n"
      << "at op #" << d->op_index << " of " << ops.size() << ": "
      << (d->op_index < ops.size() ? Describe(ops[d->op_index]) : std::string("(end of the sequence)")) << "\n"
      << "what: " << d->signature << "\n  " << d->detail << "\n";
    std::printf("%s", r.str().c_str());
    std::fflush(stdout);
    if (seen || known) {
      std::printf(seen ? "(the same kind was reported in this run: not minimised again)\n" : "(known: PMEMFS_DIFF_KNOWN)\n");
      if (!seen) res.signatures.push_back(d->signature), families.push_back(Family(d->signature));
      if (!opts.keep_going) break;
      continue;
    }
    res.signatures.push_back(d->signature);
    families.push_back(Family(d->signature));
    auto mstart = Clock_::now();
    std::vector<Op> failing(ops.begin(), ops.begin() + static_cast<long>(std::min(ops.size(), d->op_index + 1)));
    int replays = 0;
    std::vector<Op> small = failing;
    std::optional<Divergence> again = Replay(failing, opts.config);
    ++replays;
    if (!again || again->signature != d->signature) {
      r << "\nThe sequence did not diverge the same way on replay (" << (again ? again->signature : "no divergence")
        << "): not minimised; the full sequence (" << failing.size() << " ops) follows.\n";
    } else {
      int more = 0;
      small = Minimise(failing, d->signature, opts.config, opts.minimise_seconds, &more);
      replays += more;
    }
    std::vector<std::string> trace;
    std::optional<Divergence> last = Replay(small, opts.config, &trace);
    std::ostringstream m;
    m << "\n--- minimised sequence (seed " << seed << "): " << small.size() << " of " << failing.size() << " ops ("
      << replays << " replays, " << static_cast<int>(Since(mstart)) << " s); each call with what pmemfs returned ---\n"
      << Numbered(trace) << "--- which diverges: "
      << (last ? last->signature + "\n  " + last->detail : "(not on this replay)") << "\n";
    std::printf("%s", m.str().c_str());
    std::fflush(stdout);
    res.report += r.str() + m.str();
    minimising += Since(mstart);
    if (!opts.keep_going) break;
  }
  res.seconds = Since(start) - minimising;
  return res;
}

}  // namespace pmemfs::difftest
