// Everything of core/: tensors, factories, random numbers and the non-differentiable ops.
#pragma once

#include "braid/core/cpu.h"
#include "braid/core/creation.h"
#include "braid/core/cuda.h"
#include "braid/core/device.h"
#include "braid/core/dtype.h"
#include "braid/core/error.h"
#include "braid/core/ops.h"
#include "braid/core/random.h"
#include "braid/core/tensor.h"
