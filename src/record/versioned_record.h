// What the record of a merge (state.json, `status`) and the log say about a
// versioned directory: every entry with its verdict, chosen, passed over or
// ignored, and why.
//
// Unit tests: the "boot counting" and "state: versioned records" cases in
// tests/unit/vpick_test.cc; tests/integration/versioned.sh end to end.
#pragma once

#include "discover/discover.h"
#include "state/state_file.h"
#include "vpick/vpick.h"

namespace rdext {

// Lists the directory's entries in the record (usable ones "passed over,
// not considered" until a selection says otherwise) and logs the ignored
// ones and the notes about odd names. Shadowed directories are listed but
// not logged about: nothing in them was looked at.
void start_versioned_record(const Candidate& c, ExtensionRecord& rec);

// Puts the outcome of select_entry() into the record and logs it: the
// chosen entry, each one passed over after a try, a pin not honoured.
// `pin` is the rd.<class>.pin= value ("" when none).
void record_selection(const Candidate& c, const Selection& sel, const std::string& pin, ExtensionRecord& rec);

// One line naming why no entry could be used (the tried entries' reasons).
std::string no_entry_fits(const Candidate& c, const Selection& sel);

}  // namespace rdext
