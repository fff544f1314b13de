// A braid::nn program that needs no MPI: a few SGD steps of a small classifier (GELU with the tanh approximation,
// cross-entropy); prints the losses and exits 0 when the loss fell.
#include <braid/nn/functional.h>
#include <braid/nn/layers.h>
#include <braid/nn/module.h>
#include <braid/optim/sgd.h>

#include <cstdio>

using namespace braid;

struct Classifier : nn::Module {
  nn::Linear fc1 = register_module("fc1", nn::Linear(8, 16));
  nn::GELU act = register_module("act", nn::GELU({.approximate = "tanh"}));
  nn::Linear fc2 = register_module("fc2", nn::Linear(16, 4));
  Tensor forward(const Tensor& x) { return fc2(act(fc1(x))); }
};

int main() {
  manual_seed(1);
  Classifier model;
  const Tensor x = randn({64, 8});
  const Tensor target = argmax(narrow(x, 1, 0, 4), 1);  // the class is the largest of the first four inputs
  optim::SGD optimizer(model.parameters(), {.lr = 0.5});
  float first = 0, last = 0;
  for (int step = 1; step <= 20; ++step) {
    optimizer.zero_grad();
    Tensor loss = nn::functional::cross_entropy(model.forward(x), target);
    loss.backward();
    optimizer.step();
    last = loss.item<float>();
    if (step == 1) first = last;
    std::printf("step %d loss %.6f\n", step, last);
  }
  return last < first ? 0 : 1;
}
