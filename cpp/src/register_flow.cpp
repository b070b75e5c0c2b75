#include "pybind11.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <fastflow/integrator.hpp>

using namespace fastflow;

namespace {

void check_data(const Model& model, const farray& X, const farray& Y) {
    if (X.ndim() != 2 || static_cast<std::size_t>(X.shape(1)) != model.d_in())
        throw std::invalid_argument("X must be 2-D with d_in columns");
    if (static_cast<std::size_t>(Y.size()) != static_cast<std::size_t>(X.shape(0)) * model.d_out())
        throw std::invalid_argument("y must have d_out targets (labels +-1 for classification) per sample");
}

template <std::size_t N>
py::tuple names(const char* const (&list)[N]) {
    py::tuple out(N);
    for (std::size_t i = 0; i < N; ++i) out[i] = py::str(list[i]);
    return out;
}

py::dict to_dict(const Result& r, std::size_t p) {
    const auto ne = static_cast<py::ssize_t>(r.events.size());
    py::array_t<double> ev_tau(ne);
    py::array_t<int> ev_kind(ne), ev_layer(ne);
    py::array_t<std::int64_t> ev_sample(ne), ev_neuron(ne);
    for (py::ssize_t e = 0; e < ne; ++e) {
        const Event& ev = r.events[static_cast<std::size_t>(e)];
        ev_tau.mutable_at(e) = ev.tau;
        ev_kind.mutable_at(e) = static_cast<int>(ev.kind);
        ev_sample.mutable_at(e) = static_cast<std::int64_t>(ev.sample);
        ev_layer.mutable_at(e) = ev.layer;
        ev_neuron.mutable_at(e) = static_cast<std::int64_t>(ev.neuron);
    }
    const auto m = static_cast<py::ssize_t>(r.log_loss_eval.size());
    py::array_t<double> theta_eval({m, static_cast<py::ssize_t>(p)});
    std::copy(r.theta_eval.begin(), r.theta_eval.end(), theta_eval.mutable_data());
    py::dict d;
    d["status"] = static_cast<int>(r.status);
    d["message"] = r.message;
    d["tau"] = r.tau;
    d["theta"] = py::array_t<double>(static_cast<py::ssize_t>(r.theta.size()), r.theta.data());
    d["log_loss"] = r.log_loss;
    d["log_grad_norm"] = r.log_grad_norm;
    d["balance_drift"] = r.balance_drift;
    d["n_steps"] = r.n_steps;
    d["n_rejected"] = r.n_rejected;
    d["n_rhs"] = r.n_rhs;
    d["event_tau"] = ev_tau;
    d["event_kind"] = ev_kind;
    d["event_sample"] = ev_sample;
    d["event_layer"] = ev_layer;
    d["event_neuron"] = ev_neuron;
    d["theta_eval"] = theta_eval;
    py::array_t<std::uint8_t> modes(static_cast<py::ssize_t>(r.modes.size()));
    for (std::size_t k = 0; k < r.modes.size(); ++k)
        modes.mutable_at(static_cast<py::ssize_t>(k)) = static_cast<std::uint8_t>(r.modes[k]);
    d["modes"] = modes;
    d["log_loss_eval"] = py::array_t<double>(m, r.log_loss_eval.data());
    return d;
}

// Called from a thread without the GIL: takes it briefly, at most every 50 ms, to let Python see Ctrl-C, and at most
// every 200 ms passes its arguments to `report` (a Python callable, or None), which the caller holds meanwhile.
class Poll {
public:
    explicit Poll(const py::object& report) : report_(report) {}

    // true once Ctrl-C is pending; the report runs Python code, where Ctrl-C may arrive as KeyboardInterrupt instead.
    // Any other exception of the report propagates.
    template <class... Args>
    bool operator()(const Args&... args) {
        const auto now = clock::now();
        if (now - last_ < std::chrono::milliseconds(50)) return false;
        last_ = now;
        py::gil_scoped_acquire gil;
        if (PyErr_CheckSignals() != 0) return true;
        if (report_.is_none() || now - last_report_ < std::chrono::milliseconds(200)) return false;
        last_report_ = now;
        try {
            report_(args...);
        } catch (py::error_already_set& e) {
            if (e.matches(PyExc_KeyboardInterrupt)) return true;
            throw;
        }
        return false;
    }

private:
    using clock = std::chrono::steady_clock;
    const py::object& report_;
    clock::time_point last_ = clock::now(), last_report_ = last_;
};

}  // namespace

void register_flow(py::module_& m) {
    m.attr("STATUSES") = names(status_names);
    m.attr("EVENT_KINDS") = names(event_kind_names);
    m.attr("LOSSES") = names(loss_names);
    m.attr("MODES") = names(mode_names);

    py::class_<Options>(m, "Options")
        .def(py::init<>())
        .def_property(
            "loss", [](const Options& o) { return loss_name(o.loss); },
            [](Options& o, const std::string& name) { o.loss = loss_from_name(name); })
        .def_readwrite("tau_max", &Options::tau_max)
        .def_readwrite("rtol", &Options::rtol)
        .def_readwrite("atol", &Options::atol)
        .def_readwrite("max_steps", &Options::max_steps)
        .def_readwrite("max_events", &Options::max_events)
        .def_readwrite("gtol", &Options::gtol)
        .def_readwrite("settle", &Options::settle)
        .def_property(
            "branch", [](const Options& o) { return o.leave_branches ? "leave" : "stay"; },
            [](Options& o, const std::string& name) {
                if (name != "stay" && name != "leave") throw std::invalid_argument("branch must be 'stay' or 'leave'");
                o.leave_branches = name == "leave";
            })
        .def_readwrite("tau_eval", &Options::tau_eval);

    m.def("integrator_bytes", &Integrator::bytes_needed, py::arg("model"), py::arg("n"), py::arg("n_eval"));

    m.def(
        "integrate",
        [](const Model& model, const farray& X, const farray& Y, const farray& theta0, const Options& options,
           const py::object& progress) {
            check_data(model, X, Y);
            if (theta0.ndim() != 1 || static_cast<std::size_t>(theta0.shape(0)) != model.n_params())
                throw std::invalid_argument("theta0 must be 1-D of length n_params");
            Result r;
            bool interrupted = false;
            {
                // safe: the integrator reads only X, Y, theta0 and options (held here) and writes only r
                py::gil_scoped_release release;
                Poll poll(progress);
                Integrator integ(model, X.data(), Y.data(), static_cast<std::size_t>(X.shape(0)), options);
                r = integ.run(theta0.data(), [&](const Progress& at) {
                    return interrupted = interrupted || poll(at.tau, at.n_steps, at.n_events, at.log_loss);
                });
            }
            if (interrupted) PyErr_Clear();  // reported as status "interrupted"
            return to_dict(r, model.n_params());
        },
        py::arg("model"), py::arg("X"), py::arg("Y"), py::arg("theta0"), py::arg("options"),
        py::arg("progress") = py::none());

    using imodes = py::array_t<int, py::array::c_style | py::array::forcecast>;
    // the modes of velocity and velocity_jacobian, checked against the data
    auto read_modes = [](const Model& model, const farray& X, const farray& Y, const farray& theta,
                         const imodes& modes) {
        check_data(model, X, Y);
        if (theta.ndim() != 1 || static_cast<std::size_t>(theta.shape(0)) != model.n_params())
            throw std::invalid_argument("theta must be 1-D of length n_params");
        if (static_cast<std::size_t>(modes.size()) != static_cast<std::size_t>(X.shape(0)) * model.n_hidden())
            throw std::invalid_argument("modes must hold n x n_hidden entries");
        std::vector<Mode> m(static_cast<std::size_t>(modes.size()));
        std::transform(modes.data(), modes.data() + modes.size(), m.begin(), [](int v) {
            if (v < 0 || v > static_cast<int>(Mode::sliding)) throw std::invalid_argument("modes must be in MODES");
            return static_cast<Mode>(v);
        });
        return m;
    };

    m.def(
        "velocity",
        [read_modes](const Model& model, const farray& X, const farray& Y, const Options& options,
                     const farray& theta, double tau, const imodes& modes) {
            const std::vector<Mode> m = read_modes(model, X, Y, theta, modes);
            py::array_t<double> V(static_cast<py::ssize_t>(model.n_params()));
            Integrator integ(model, X.data(), Y.data(), static_cast<std::size_t>(X.shape(0)), options);
            integ.velocity(tau, theta.data(), m, V.mutable_data());
            return V;
        },
        py::arg("model"), py::arg("X"), py::arg("Y"), py::arg("options"), py::arg("theta"), py::arg("tau"),
        py::arg("modes"),
        "the velocity at theta, time tau of the integrator, with the given modes (indices into MODES): on the "
        "sliding switches the minimal-norm element of their Clarke set");

    m.def(
        "velocity_jacobian",
        [read_modes](const Model& model, const farray& X, const farray& Y, const Options& options,
                     const farray& theta, double tau, const imodes& modes) {
            const std::vector<Mode> m = read_modes(model, X, Y, theta, modes);
            const auto p = static_cast<py::ssize_t>(model.n_params());
            py::array_t<double> V(p);
            py::array_t<double> J({p, p});
            Integrator integ(model, X.data(), Y.data(), static_cast<std::size_t>(X.shape(0)), options);
            integ.velocity_jacobian(tau, theta.data(), m, V.mutable_data(), J.mutable_data());
            return py::make_tuple(V, J);
        },
        py::arg("model"), py::arg("X"), py::arg("Y"), py::arg("options"), py::arg("theta"), py::arg("tau"),
        py::arg("modes"),
        "the velocity and its Jacobian (as the implicit steps use them) at theta, time tau of the integrator, with "
        "the given modes (indices into MODES)");

    m.def(
        "integrate_many",
        [](const Model& model, const farray& X, const farray& Y, const farray& thetas, const Options& options,
           std::size_t threads, const py::object& progress) {
            check_data(model, X, Y);
            if (thetas.ndim() != 2 || static_cast<std::size_t>(thetas.shape(1)) != model.n_params())
                throw std::invalid_argument("thetas0 must be 2-D with n_params columns");
            const std::size_t count = static_cast<std::size_t>(thetas.shape(0)), p = model.n_params();
            std::vector<Result> results(count);
            std::atomic<std::size_t> next{0}, finished{0};
            std::atomic<bool> stop{false};
            bool interrupted = false;
            std::exception_ptr failed;  // of the progress report
            {
                // safe: workers read only X, Y, thetas and options, and each writes its own results[i]
                py::gil_scoped_release release;
                std::mutex mu;
                std::condition_variable cv;
                std::size_t finished_workers = 0;
                const std::size_t nt = std::max<std::size_t>(1, std::min(threads, count));
                std::vector<std::thread> pool;
                for (std::size_t w = 0; w < nt; ++w)
                    pool.emplace_back([&] {
                        Integrator integ(model, X.data(), Y.data(), static_cast<std::size_t>(X.shape(0)), options);
                        for (std::size_t i; (i = next++) < count && !stop;) {
                            results[i] = integ.run(thetas.data() + i * p, [&](const Progress&) { return stop.load(); });
                            ++finished;
                        }
                        std::lock_guard<std::mutex> lock(mu);
                        ++finished_workers;
                        cv.notify_one();
                    });
                Poll poll(progress);
                std::unique_lock<std::mutex> lock(mu);
                while (!cv.wait_for(lock, std::chrono::milliseconds(50), [&] { return finished_workers == nt; })) {
                    lock.unlock();
                    try {
                        if (!stop && poll(finished.load())) stop = interrupted = true;
                    } catch (...) {  // the workers must stop and be joined before it is raised
                        failed = std::current_exception();
                        stop = true;
                    }
                    lock.lock();
                }
                lock.unlock();
                for (auto& t : pool) t.join();
            }
            if (failed) std::rethrow_exception(failed);
            if (interrupted) PyErr_Clear();
            py::list out;
            for (std::size_t i = 0; i < count; ++i) {
                if (results[i].theta.empty()) {  // never started: interrupted before its turn
                    results[i].status = Status::interrupted;
                    results[i].message = "interrupted before it started";
                    results[i].theta.assign(thetas.data() + i * p, thetas.data() + (i + 1) * p);
                    results[i].log_loss = std::numeric_limits<double>::quiet_NaN();
                    results[i].log_grad_norm = std::numeric_limits<double>::quiet_NaN();
                }
                out.append(to_dict(results[i], p));
            }
            return out;
        },
        py::arg("model"), py::arg("X"), py::arg("Y"), py::arg("thetas"), py::arg("options"), py::arg("threads"),
        py::arg("progress") = py::none());
}
