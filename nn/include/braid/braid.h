// Everything a training program needs: #include <braid/braid.h>.
#pragma once

#include "braid/core/core.h"
#include "braid/data/dataloader.h"
#include "braid/data/dataset.h"
#include "braid/data/idx.h"
#include "braid/nn/autograd.h"
#include "braid/nn/checkpoint.h"
#include "braid/nn/functional.h"
#include "braid/nn/init.h"
#include "braid/nn/layers.h"
#include "braid/nn/module.h"
#include "braid/optim/adam.h"
#include "braid/optim/clip_grad.h"
#include "braid/optim/lr_scheduler.h"
#include "braid/optim/sgd.h"
