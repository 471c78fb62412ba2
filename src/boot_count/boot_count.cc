#include "boot_count/boot_count.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <vector>

#include "base/fs.h"
#include "base/log.h"

namespace rdext {
namespace {

Result<UniqueFd> open_versioned_dir(int root_fd, const TrialRecord& t) {
    auto fd = open_in_root(root_fd, t.dir, O_PATH | O_DIRECTORY);
    if (!fd) return fd.error().prefix("versioned directory ");
    return fd;
}

// The rename that uses up one try; status and reason say how it went.
void count_one(int root_fd, const std::string& name, TrialRecord& t) {
    auto dir = open_versioned_dir(root_fd, t);
    auto r = dir ? rename_entry(dir->get(), t.entry, t.counted_name, t.identity) : Result<void>(dir.error());
    if (r) {
        t.status = TrialStatus::Counted;
        t.reason = "one try used up by this boot";
        log_notice() << name << ": boot counting: renamed " << t.dir << "/" << t.entry << " to " << t.counted_name;
    } else if (r.error().code() == EROFS) {
        t.status = TrialStatus::Pending;
        t.reason = "the root is read-only; the rename is due at the next merge or refresh on a writable root";
        log_notice() << name << ": boot counting: cannot rename " << t.entry << " to " << t.counted_name
                     << " yet, the root is read-only; recorded as pending";
    } else {
        t.status = TrialStatus::Failed;
        t.reason = r.error().what();
        log_warning() << name << ": boot counting: not renaming " << t.dir << "/" << t.entry << ": " << t.reason;
    }
}

// The same entry's trial as counted by an earlier merge of this boot.
const TrialRecord* counted_this_boot(const MergeState* previous, const MergeState& state, const TrialRecord& t) {
    if (!previous || previous->boot_id.empty() || previous->boot_id != state.boot_id) return nullptr;
    for (const auto& r : previous->extensions)
        if (r.trial && r.trial->dir == t.dir && r.trial->identity == t.identity &&
            (r.trial->status == TrialStatus::Counted || r.trial->status == TrialStatus::Pending || r.trial->status == TrialStatus::Exhausted))
            return &*r.trial;
    return nullptr;
}

}  // namespace

std::optional<TrialRecord> trial_for(const std::string& dir, const VersionedImage& chosen) {
    const VersionedEntry& e = chosen.entry;
    if (!e.tries) return std::nullopt;
    TrialRecord t;
    t.dir = dir;
    t.entry = e.file;
    t.good_name = e.good_name();
    t.identity = chosen.identity;
    if (e.tries->left > 0)
        t.counted_name = e.name_with_tries(e.tries->left - 1, e.tries->done == UINT_MAX ? UINT_MAX : e.tries->done + 1);
    return t;
}

Result<void> rename_entry(int dir_fd, const std::string& from, const std::string& to, const std::string& identity) {
    if (from.find('/') != std::string::npos || to.find('/') != std::string::npos || to.empty())
        return Error(EINVAL) << "not an entry name: " << from << " -> " << to;
    struct stat st;
    if (::fstatat(dir_fd, from.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
        int e = errno;
        // Done already (by a merge whose record was not kept): nothing to do.
        if (e == ENOENT && ::fstatat(dir_fd, to.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            entry_identity(st) == identity)
            return {};
        return Error::sys(e) << from;
    }
    if (entry_identity(st) != identity)
        return Error(ESTALE) << from << " is no longer the entry that was chosen, left alone";
    if (::syscall(SYS_renameat2, dir_fd, from.c_str(), dir_fd, to.c_str(), RENAME_NOREPLACE) < 0) {
        if (errno == EEXIST) return Error(EEXIST) << to << " already exists, " << from << " left alone";
        return ErrnoError() << "rename " << from << " to " << to;
    }
    return {};
}

void count_trials(int root_fd, const MergeState* previous, MergeState& state) {
    for (auto& rec : state.extensions) {
        if (!rec.trial || rec.result != ExtensionResult::Merged) continue;
        TrialRecord& t = *rec.trial;
        if (const TrialRecord* before = counted_this_boot(previous, state, t)) {
            t = *before;
            log_info() << rec.name << ": boot counting: this boot's try of " << t.entry << " is already "
                       << trial_status_name(t.status);
        } else if (t.counted_name.empty()) {
            t.status = TrialStatus::Exhausted;
            t.reason = "no tries left; merged only because no other entry could be used";
            log_warning() << rec.name << ": " << t.dir << "/" << t.entry << ": " << t.reason;
        } else {
            count_one(root_fd, rec.name, t);
        }
        if (t.status == TrialStatus::Counted) rec.path = t.dir + "/" + t.counted_name;
    }
}

void retry_pending_trials(int root_fd, MergeState& previous) {
    for (auto& rec : previous.extensions) {
        if (!rec.trial || rec.trial->status != TrialStatus::Pending) continue;
        TrialRecord& t = *rec.trial;
        auto dir = open_versioned_dir(root_fd, t);
        auto r = dir ? rename_entry(dir->get(), t.entry, t.counted_name, t.identity) : Result<void>(dir.error());
        if (r) {
            t.status = TrialStatus::Counted;
            t.reason = "one try used up by this boot (renamed late: the root was read-only at first)";
            log_notice() << rec.name << ": boot counting: renamed " << t.dir << "/" << t.entry << " to "
                         << t.counted_name << " (pending since the root was read-only)";
        } else if (r.error().code() != EROFS) {
            t.status = TrialStatus::Failed;
            t.reason = r.error().what();
            log_warning() << rec.name << ": boot counting: the pending rename of " << t.dir << "/" << t.entry
                          << " cannot be done: " << t.reason;
        }
    }
}

namespace {

// mark-good and count-tries read the record of the merge; a missing one is
// nothing to do.
std::optional<MergeState> read_merge_record(const Target& target, MergeState& record) {
    auto runtime = target.runtime_dir(false);
    auto state = runtime ? read_state(runtime->get()) : Result<MergeState>(runtime.error());
    if (state) return std::move(*state);
    if (state.error().code() != ENOENT)
        record.failure = state.error().prefix("cannot read the record of the merge: ").what();
    return std::nullopt;
}

void update_merge_record(const Target& target, const MergeState& state, const char* what) {
    auto runtime = target.runtime_dir(false);
    auto w = runtime ? write_state(runtime->get(), state) : Result<void>(runtime.error());
    if (!w) log_warning() << "cannot record the " << what << " in state.json: " << w.error().what();
}

}  // namespace

MergeState count_pending_tries(const Target& target) {
    MergeState record = new_record("count-tries", target.root_path);
    auto state = read_merge_record(target, record);
    if (!state) {
        if (record.failure.empty()) log_info() << "nothing is merged, no try to count";
        return record;
    }
    std::vector<size_t> pending;
    for (size_t i = 0; i < state->extensions.size(); i++)
        if (state->extensions[i].trial && state->extensions[i].trial->status == TrialStatus::Pending) pending.push_back(i);
    if (pending.empty()) {
        log_info() << "no try is pending, nothing to count";
        return record;
    }
    retry_pending_trials(target.root_fd.get(), *state);
    bool changed = false;
    for (size_t i : pending) {
        ExtensionRecord& rec = state->extensions[i];
        const TrialRecord& t = *rec.trial;
        if (t.status == TrialStatus::Counted) rec.path = t.dir + "/" + t.counted_name;
        record.extensions.push_back(rec);
        changed |= t.status != TrialStatus::Pending;
        if (t.status == TrialStatus::Counted) continue;
        if (t.status == TrialStatus::Pending)
            // Still read-only: the entry keeps its name (mark-good may still bless it).
            log_warning() << rec.name << ": boot counting: " << t.dir << "/" << t.entry
                          << " cannot be renamed, the root is still read-only; this boot's try is not counted";
        if (!record.failure.empty()) continue;  // the first failure is the error
        if (t.status == TrialStatus::Pending)
            record.failure = rec.name + ": the root is read-only, " + t.entry + " keeps its name";
        else
            record.failure = rec.name + ": " + t.reason;
    }
    if (changed) update_merge_record(target, *state, "counted tries");
    return record;
}

MergeState mark_good(const Target& target) {
    MergeState record = new_record("mark-good", target.root_path);
    auto state = read_merge_record(target, record);
    if (!state) {
        if (record.failure.empty()) log_info() << "nothing is merged, nothing to mark good";
        return record;
    }
    bool failed = false;
    for (auto& rec : state->extensions) {
        if (!rec.trial || rec.result != ExtensionResult::Merged || rec.trial->status == TrialStatus::Good) continue;
        TrialRecord& t = *rec.trial;
        const std::string& current = t.status == TrialStatus::Counted ? t.counted_name : t.entry;
        auto dir = open_versioned_dir(target.root_fd.get(), t);
        auto r = dir ? rename_entry(dir->get(), current, t.good_name, t.identity) : Result<void>(dir.error());
        if (!r) {
            // Reported once, by the caller: every failure in the record.
            std::string why = rec.name + ": cannot mark " + t.dir + "/" + current + " good: " + r.error().what();
            record.failure += (failed ? "; " : "") + why;
            failed = true;
            continue;
        }
        log_notice() << rec.name << ": marked good: renamed " << t.dir << "/" << current << " to " << t.good_name;
        t.status = TrialStatus::Good;
        t.reason = "marked good";
        rec.path = t.dir + "/" + t.good_name;
        record.extensions.push_back(rec);
    }
    if (record.extensions.empty() && !failed) log_info() << "no trial entry in the current merge, nothing to mark good";
    if (!record.extensions.empty()) update_merge_record(target, *state, "marks");
    return record;
}

}  // namespace rdext
