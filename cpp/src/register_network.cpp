#include "pybind11.hpp"

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fastflow/jacobian.hpp>
#include <fastflow/model.hpp>
#include <fastflow/network.hpp>

using fastflow::Model;

namespace {

void check_shapes(const Model& model, const farray& theta, const farray& X) {
    if (theta.ndim() != 1 || static_cast<std::size_t>(theta.shape(0)) != model.n_params())
        throw std::invalid_argument("theta must be 1-D of length n_params = " + std::to_string(model.n_params()));
    if (X.ndim() != 2 || static_cast<std::size_t>(X.shape(1)) != model.d_in())
        throw std::invalid_argument("X must be 2-D with d_in = " + std::to_string(model.d_in()) + " columns");
}

// nullptr for None (sigma'(h) = 1[h > 0]); otherwise slopes must be n x n_hidden
const double* slopes_or_null(const Model& model, const std::optional<farray>& slopes, std::size_t n) {
    if (!slopes) return nullptr;
    if (slopes->ndim() != 2 || static_cast<std::size_t>(slopes->shape(0)) != n ||
        static_cast<std::size_t>(slopes->shape(1)) != model.n_hidden())
        throw std::invalid_argument("slopes must be 2-D of shape (n, n_hidden) = (" + std::to_string(n) + ", " +
                                    std::to_string(model.n_hidden()) + ")");
    return slopes->data();
}

// the indices `given`, each in [0, bound) (else `what` is the error), or all of 0..bound-1 for None
std::vector<std::size_t> indices_or_all(const std::optional<std::vector<long>>& given, std::size_t bound,
                                        const std::string& what) {
    std::vector<std::size_t> out(given ? given->size() : bound);
    for (std::size_t k = 0; k < out.size(); ++k) {
        const long q = given ? (*given)[k] : static_cast<long>(k);
        if (q < 0 || static_cast<std::size_t>(q) >= bound)
            throw std::invalid_argument(what + " in [0, " + std::to_string(bound) + ")");
        out[k] = static_cast<std::size_t>(q);
    }
    return out;
}

}  // namespace

void register_network(py::module_& m) {
    py::class_<Model, std::shared_ptr<Model>>(m, "Model")
        .def_property_readonly("n_params", &Model::n_params)
        .def_property_readonly("d_in", &Model::d_in)
        .def_property_readonly("d_out", &Model::d_out)
        .def_property_readonly("n_hidden", &Model::n_hidden)
        .def("forward",
             [](const Model& model, const farray& theta, const farray& X, const std::optional<farray>& slopes) {
                 check_shapes(model, theta, X);
                 const std::size_t n = static_cast<std::size_t>(X.shape(0));
                 const double* sl = slopes_or_null(model, slopes, n);
                 std::vector<double> scratch(model.scratch_size());
                 farray out({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(model.d_out())});
                 double* o = out.mutable_data();
                 {
                     py::gil_scoped_release release;
                     model.forward(theta.data(), X.data(), n, sl, o, scratch.data());
                 }
                 return out;
             },
             py::arg("theta"), py::arg("X"), py::arg("slopes") = py::none())
        .def("preactivations",
             [](const Model& model, const farray& theta, const farray& X, const std::optional<farray>& slopes) {
                 check_shapes(model, theta, X);
                 const std::size_t n = static_cast<std::size_t>(X.shape(0));
                 const double* sl = slopes_or_null(model, slopes, n);
                 std::vector<double> scratch(model.scratch_size());
                 farray h({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(model.n_hidden())});
                 double* o = h.mutable_data();
                 {
                     py::gil_scoped_release release;
                     model.preactivations(theta.data(), X.data(), n, sl, o, scratch.data());
                 }
                 return h;
             },
             py::arg("theta"), py::arg("X"), py::arg("slopes") = py::none())
        .def("jacobian",
             [](const Model& model, const farray& theta, const farray& X, const std::optional<farray>& slopes) {
                 check_shapes(model, theta, X);
                 const std::size_t n = static_cast<std::size_t>(X.shape(0));
                 const double* sl = slopes_or_null(model, slopes, n);
                 farray J({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(model.d_out()),
                           static_cast<py::ssize_t>(model.n_params())});
                 double* o = J.mutable_data();
                 {
                     py::gil_scoped_release release;
                     fastflow::output_jacobian(model, theta.data(), X.data(), n, sl, o);
                 }
                 return J;
             },
             "dPhi(theta; x_i)/dtheta, shape (n, d_out, n_params), with the given slopes (n, n_hidden) or "
             "sigma'(h) = 1[h > 0]",
             py::arg("theta"), py::arg("X"), py::arg("slopes") = py::none())
        .def("hessian",
             [](const Model& model, const farray& theta, const farray& X, const farray& G,
                const std::optional<farray>& slopes, const std::optional<std::vector<long>>& rows) {
                 check_shapes(model, theta, X);
                 const std::size_t n = static_cast<std::size_t>(X.shape(0)), p = model.n_params();
                 if (G.ndim() != 2 || static_cast<std::size_t>(G.shape(0)) != n ||
                     static_cast<std::size_t>(G.shape(1)) != model.d_out())
                     throw std::invalid_argument("G must be 2-D of shape (n, d_out) = (" + std::to_string(n) + ", " +
                                                 std::to_string(model.d_out()) + ")");
                 const double* sl = slopes_or_null(model, slopes, n);
                 const auto which = indices_or_all(rows, p, "rows must be parameter indices");
                 farray Hess({static_cast<py::ssize_t>(which.size()), static_cast<py::ssize_t>(p)});
                 double* o = Hess.mutable_data();
                 {
                     py::gil_scoped_release release;
                     fastflow::weighted_hessian(model, theta.data(), X.data(), n, sl, G.data(), which, o);
                 }
                 return Hess;
             },
             "sum_i G_i . d^2 Phi(theta; x_i)/dtheta^2, shape (n_params, n_params), with the given slopes (n, "
             "n_hidden) or sigma'(h) = 1[h > 0]; only the rows `rows` (parameter indices, in that order), shape "
             "(len(rows), n_params), when given: each row costs a pass over the samples",
             py::arg("theta"), py::arg("X"), py::arg("G"), py::arg("slopes") = py::none(), py::arg("rows") = py::none())
        .def("switch_normals",
             [](const Model& model, const farray& theta, const farray& X, const farray& slopes,
                const std::optional<std::vector<long>>& units) {
                 check_shapes(model, theta, X);
                 const std::size_t n = static_cast<std::size_t>(X.shape(0));
                 const double* sl = slopes_or_null(model, slopes, n);
                 const auto which = indices_or_all(units, model.n_hidden(), "units must be hidden unit indices");
                 farray N({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(which.size()),
                           static_cast<py::ssize_t>(model.n_params())});
                 double* o = N.mutable_data();
                 {
                     py::gil_scoped_release release;
                     fastflow::switch_normals(model, theta.data(), X.data(), n, sl, which, o);
                 }
                 return N;
             },
             "dh(theta; x_i)/dtheta of every hidden pre-activation, shape (n, n_hidden, n_params), with the given "
             "slopes (n, n_hidden); only those of the units `units` (hidden unit indices, in that order), shape (n, "
             "len(units), n_params), when given",
             py::arg("theta"), py::arg("X"), py::arg("slopes"), py::arg("units") = py::none());

    py::class_<fastflow::TwoLayer, Model, std::shared_ptr<fastflow::TwoLayer>>(m, "TwoLayer")
        .def(py::init([](std::size_t d_in, std::size_t width, std::size_t d_out, const std::string& activation) {
                 if (activation != "relu" && activation != "linear")
                     throw std::invalid_argument("activation must be 'relu' or 'linear', got '" + activation + "'");
                 return std::make_shared<fastflow::TwoLayer>(d_in, width, d_out, activation == "relu");
             }),
             py::arg("d_in"), py::arg("width"), py::arg("d_out") = 1, py::arg("activation") = "relu");

    py::class_<fastflow::LayeredNetwork, Model, std::shared_ptr<fastflow::LayeredNetwork>>(m, "Layered")
        .def(py::init([](std::vector<std::size_t> sizes, std::vector<std::vector<long>> maps,
                         const std::string& activation, bool bias, bool skip) {
                 if (activation != "relu" && activation != "linear")
                     throw std::invalid_argument("activation must be 'relu' or 'linear', got '" + activation + "'");
                 return std::make_shared<fastflow::LayeredNetwork>(std::move(sizes), std::move(maps),
                                                                   activation == "relu", bias, skip);
             }),
             py::arg("sizes"), py::arg("maps"), py::arg("activation") = "relu", py::arg("bias") = false,
             py::arg("skip") = false);
}
