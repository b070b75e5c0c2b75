// Included first by every glue file, so that all of them see pybind11 the same way.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

namespace py = pybind11;

using farray = py::array_t<double, py::array::c_style | py::array::forcecast>;
