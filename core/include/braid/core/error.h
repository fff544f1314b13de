// braid::Error and BRAID_CHECK live at the bottom layer (kernels/) so every layer throws the same exceptions.
#pragma once

#include "braid/kernels/error.h"
