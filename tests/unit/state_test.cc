// The record of the last merge (state/state_file.h): state.json and the
// words it keeps for the enums.
#include <doctest/doctest.h>

#include <string>

#include "state/state_file.h"

using namespace rdext;

TEST_CASE("state.json round-trips records, odd characters included") {
    MergeState s;
    s.root = "/sysroot";
    s.time = "2026-01-01T00:00:00Z";
    ExtensionRecord r;
    r.name = "we\"ird\nname";
    r.cls = ImageClass::Sysext;
    r.path = "/etc/extensions/x.raw";
    r.kind = "raw";
    r.fstype = "erofs";
    r.result = ExtensionResult::Skipped;
    r.reason = "VERSION_ID=11 does not match";
    r.hierarchies = {"/usr", "/opt"};
    s.extensions.push_back(r);
    auto back = state_from_json(state_to_json(s, true));
    REQUIRE(back);
    CHECK(back->root == "/sysroot");
    REQUIRE(back->extensions.size() == 1);
    CHECK(back->extensions[0].name == r.name);
    CHECK(back->extensions[0].reason == r.reason);
    CHECK(back->extensions[0].hierarchies == r.hierarchies);
}

TEST_CASE("state.json that is not JSON is an error, not a crash") {
    CHECK_FALSE(state_from_json("{not json"));
    CHECK_FALSE(state_from_json("[1,2]"));
    auto empty = state_from_json("{}");
    REQUIRE(empty);
    CHECK(empty->extensions.empty());
}

TEST_CASE("state.json: one word per trial status and extension result, and back") {
    for (auto s : {TrialStatus::Unset, TrialStatus::Counted, TrialStatus::Pending, TrialStatus::Exhausted,
                   TrialStatus::Failed, TrialStatus::Good})
        CHECK(trial_status_from_name(trial_status_name(s)) == s);
    CHECK(std::string(trial_status_name(TrialStatus::Pending)) == "pending");
    CHECK(std::string(trial_status_name(TrialStatus::Unset)).empty());
    CHECK_FALSE(trial_status_from_name("Pending"));
    for (auto r : {ExtensionResult::Merged, ExtensionResult::Skipped, ExtensionResult::Excluded,
                   ExtensionResult::Masked, ExtensionResult::Shadowed})
        CHECK(extension_result_from_name(extension_result_name(r)) == r);
    CHECK(std::string(extension_result_name(ExtensionResult::Excluded)) == "excluded");
    CHECK_FALSE(extension_result_from_name("broken"));
}

TEST_CASE("state.json keeps the words, and reads unknown ones as skipped and unset") {
    MergeState s;
    ExtensionRecord r;
    r.name = "c";
    r.cls = ImageClass::Confext;
    r.result = ExtensionResult::Shadowed;
    r.trial = TrialRecord{"/d", "c_1+1-0.raw", "c_1+0-1.raw", "c_1.raw", "1:2:3", TrialStatus::Exhausted, ""};
    s.extensions.push_back(r);
    const std::string text = state_to_json(s, false);
    CHECK(text.find("\"class\":\"confext\"") != std::string::npos);
    CHECK(text.find("\"result\":\"shadowed\"") != std::string::npos);
    CHECK(text.find("\"status\":\"exhausted\"") != std::string::npos);
    auto back = state_from_json(text);
    REQUIRE(back);
    REQUIRE(back->extensions.size() == 1);
    CHECK(back->extensions[0].cls == ImageClass::Confext);
    CHECK(back->extensions[0].result == ExtensionResult::Shadowed);
    CHECK(back->extensions[0].trial->status == TrialStatus::Exhausted);

    auto odd = state_from_json(
        R"({"extensions":[{"name":"x","class":"other","result":"vanished","trial":{"status":"sleeping"}}]})");
    REQUIRE(odd);
    REQUIRE(odd->extensions.size() == 1);
    CHECK(odd->extensions[0].cls == ImageClass::Sysext);
    CHECK(odd->extensions[0].result == ExtensionResult::Skipped);
    REQUIRE(odd->extensions[0].trial);
    CHECK(odd->extensions[0].trial->status == TrialStatus::Unset);
}

TEST_CASE("state.json records the operation: failure and classes, and back") {
    MergeState s;
    s.operation = "merge";
    s.time = "2026-01-01T00:00:00Z";
    s.boot_id = "b";
    s.failure = "required extension not merged: sysext x (not found)";
    s.classes = {{ImageClass::Sysext, false, "switched off by rd.sysext=0"}, {ImageClass::Confext, true, ""}};
    const std::string text = state_to_json(s, false);
    CHECK(text.find("\"failure\":\"required") != std::string::npos);
    CHECK(text.find("\"enabled\":false") != std::string::npos);
    auto back = state_from_json(text);
    REQUIRE(back);
    CHECK(back->failure == s.failure);
    REQUIRE(back->classes.size() == 2);
    CHECK_FALSE(back->classes[0].enabled);
    CHECK(back->classes[0].reason == "switched off by rd.sysext=0");
    CHECK(back->classes[1].cls == ImageClass::Confext);
    // Success has no failure key at all.
    s.failure.clear();
    CHECK(state_to_json(s, false).find("failure") == std::string::npos);
}

TEST_CASE("state.json of older versions: merged_at and refresh-unmerged-first") {
    auto old = state_from_json(R"({"root":"/","merged_at":"2025-01-01T00:00:00Z","operation":"refresh-unmerged-first"})");
    REQUIRE(old);
    CHECK(old->time == "2025-01-01T00:00:00Z");
    CHECK(old->operation == "refresh-fallback");
    CHECK(old->failure.empty());
    CHECK(old->classes.empty());
}
