#include "pybind11.hpp"

void register_network(py::module_& m);
void register_flow(py::module_& m);
void register_linalg(py::module_& m);

PYBIND11_MODULE(_core, m) {
    m.doc() = "fastflow's C++ kernel: exact (sub)gradient flow of small linear/ReLU networks";
    register_network(m);
    register_flow(m);
    register_linalg(m);
}
