// The log of mode changes. Changes of the same switch at the same tau (handled in two rounds, e.g. a slide that
// ends and restarts at once) are logged as their net change.
#pragma once
#include <cstddef>
#include <vector>

#include "time_map.hpp"
#include "types.hpp"

namespace fastflow {

class EventLog {
public:
    explicit EventLog(const Problem& pb) : pb_(pb), last_(pb.NS, Mode::unset) {}

    void clear() { entries_.clear(), last_.assign(pb_.NS, Mode::unset); }
    // the modes the run starts from: what the log gives a switch until its first entry
    void start(const std::vector<Mode>& modes) { last_ = modes; }
    std::size_t size() const { return entries_.size(); }

    // Logs the mode change of switch sw; returns whether it started a slide.
    bool record(double tau, Mode before, Mode after, std::size_t sw) {
        for (std::size_t e = entries_.size(); e-- > 0 && same_time(entries_[e].event.tau, tau);) {
            if (entries_[e].sw != sw) continue;
            if (entries_[e].event.kind != EventKind::branch) before = entries_[e].before;
            entries_.erase(entries_.begin() + static_cast<std::ptrdiff_t>(e));
        }
        if (before == after) {
            if (before != Mode::unset) last_[sw] = after;
            return false;
        }
        if (after == Mode::sliding) push(tau, EventKind::slide_start, sw, before, after);
        else if (before == Mode::sliding) push(tau, EventKind::slide_end, sw, before, after);
        else if (before != Mode::unset)
            push(tau, after == Mode::active ? EventKind::activate : EventKind::deactivate, sw, before, after);
        return after == Mode::sliding;
    }

    void push(double tau, EventKind kind, std::size_t sw, Mode before, Mode after = Mode::unset) {
        const std::size_t unit = sw % pb_.H;
        entries_.push_back({{tau, kind, sw / pb_.H, pb_.model.switch_layer(unit), pb_.model.switch_neuron(unit)},
                            sw, before, after});
        if (kind != EventKind::branch) last_[sw] = after;
    }

    // Logs that switch sw is at an unstable branch, once per tau (a surface entered repelling at the t its unit is
    // pinned is one branch: fuzz draw 16:247)
    void branch(double tau, std::size_t sw) {
        for (std::size_t e = entries_.size(); e-- > 0 && same_time(entries_[e].event.tau, tau);)
            if (entries_[e].sw == sw && entries_[e].event.kind == EventKind::branch) return;
        push(tau, EventKind::branch, sw, Mode::unset);
    }

    // the mode switch sw was last logged to take (from start(): the run's initial one until its first entry)
    Mode last_logged(std::size_t sw) const { return last_[sw]; }

    std::vector<Event> events() const {
        std::vector<Event> out;
        out.reserve(entries_.size());
        for (const Entry& e : entries_) out.push_back(e.event);
        return out;
    }

private:
    struct Entry {
        Event event;
        std::size_t sw;  // the switch, and its modes before and after the change
        Mode before, after;
    };
    const Problem& pb_;
    std::vector<Entry> entries_;
    std::vector<Mode> last_;  // per switch: the mode it was last logged to take (unset: before start())
};

}  // namespace fastflow
