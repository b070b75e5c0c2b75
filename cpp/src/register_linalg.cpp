// The small dense solvers of the sliding computation, exposed so that tests can check them against NumPy directly.
#include "pybind11.hpp"

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include <fastflow/block_gram.hpp>
#include <fastflow/boxqp.hpp>
#include <fastflow/linalg.hpp>
#include <fastflow/minnorm.hpp>

namespace {

std::vector<double> square_matrix(const farray& Q, std::size_t& k) {
    if (Q.ndim() != 2 || Q.shape(0) != Q.shape(1)) throw std::invalid_argument("Q must be a square 2-D array");
    k = static_cast<std::size_t>(Q.shape(0));
    return std::vector<double>(Q.data(), Q.data() + k * k);
}

std::vector<double> vector_of(const farray& b, std::size_t k, const char* name) {
    if (b.ndim() != 1 || static_cast<std::size_t>(b.shape(0)) != k)
        throw std::invalid_argument(std::string(name) + " must be 1-D of length " + std::to_string(k));
    return std::vector<double>(b.data(), b.data() + k);
}

fastflow::BlockGram blocks(const std::vector<double>& Q, std::size_t k, const std::vector<std::size_t>& group) {
    if (group.size() != k) throw std::invalid_argument("group must have one label per row of Q");
    fastflow::BlockGram gram;
    gram.assign_dense(Q, k, group.data());
    return gram;
}

}  // namespace

void register_linalg(py::module_& m) {
    m.def(
        "solve_psd",
        [](const farray& Q, const farray& b, std::optional<std::vector<std::size_t>> group) {
            std::size_t k = 0;
            auto q = square_matrix(Q, k);
            std::vector<double> x;
            const std::size_t rank = group ? blocks(q, k, *group).solve(vector_of(b, k, "b"), x)
                                           : fastflow::solve_psd(q, vector_of(b, k, "b"), k, x);
            return py::make_tuple(py::array_t<double>(static_cast<py::ssize_t>(k), x.data()), rank);
        },
        py::arg("Q"), py::arg("b"), py::arg("group") = py::none(),
        "x with Q x = b (least squares when Q is singular) and the numerical rank; group: a label per row, Q being "
        "zero between rows of different labels (solved block by block)");
    m.def(
        "lu_solve",
        [](const farray& A, const farray& b) {
            std::size_t n = 0;
            auto a = square_matrix(A, n);
            auto x = vector_of(b, n, "b");
            std::vector<std::size_t> piv;
            fastflow::lu_factor(a, n, piv);
            fastflow::lu_solve(a, n, piv, x.data());
            return py::array_t<double>(static_cast<py::ssize_t>(n), x.data());
        },
        py::arg("A"), py::arg("b"), "x with A x = b, by LU factors with partial pivoting (the implicit steps' solver)");
    m.def(
        "box_qp",
        [](const farray& Q, const farray& b, double f0_norm, std::optional<std::vector<std::size_t>> group) {
            std::size_t k = 0;
            auto q = square_matrix(Q, k);
            const auto s = group ? blocks(q, k, *group).box(vector_of(b, k, "b"), f0_norm)
                                 : fastflow::box_qp(q, vector_of(b, k, "b"), k, f0_norm);
            return py::array_t<double>(static_cast<py::ssize_t>(k), s.data());
        },
        py::arg("Q"), py::arg("b"), py::arg("f0_norm"), py::arg("group") = py::none(),
        "argmin over s in [0,1]^k of s^T Q s / 2 + b^T s; group as for solve_psd");
    m.def(
        "min_norm_point",
        [](const farray& V, bool corral) -> py::object {
            if (V.ndim() != 2 || V.shape(0) == 0) throw std::invalid_argument("V must be a non-empty 2-D array");
            const auto count = static_cast<std::size_t>(V.shape(0)), p = static_cast<std::size_t>(V.shape(1));
            const double* rows = V.data();
            auto lmo = [&](const double* x, double* v) {
                std::size_t best = 0;
                double best_value = INFINITY;
                for (std::size_t c = 0; c < count; ++c) {
                    double value = 0.0;
                    for (std::size_t q = 0; q < p; ++q) value += x[q] * rows[c * p + q];
                    if (value < best_value) best_value = value, best = c;
                }
                std::copy(rows + best * p, rows + (best + 1) * p, v);
                return best;
            };
            std::vector<double> x(p);
            const auto face = fastflow::min_norm_point(p, lmo, x.data());
            py::array_t<double> point(static_cast<py::ssize_t>(p), x.data());
            if (!corral) return std::move(point);
            return py::make_tuple(point, py::array_t<std::size_t>(static_cast<py::ssize_t>(face.tags.size()),
                                                                  face.tags.data()),
                                  py::array_t<double>(static_cast<py::ssize_t>(face.weights.size()),
                                                      face.weights.data()));
        },
        py::arg("V"), py::arg("corral") = false,
        "the minimal-norm point of the convex hull of the rows of V (Wolfe); corral=True: also the rows of its "
        "final corral and their weights");
}
