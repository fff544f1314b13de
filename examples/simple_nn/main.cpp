// The seed program: a Linear(10, 1) model trained with MSE and SGD for 10 epochs on random data, on the GPU
// when there is one.
#include <braid/braid.h>

#include <cstdio>

using namespace braid;

struct SimpleNN : nn::Module {
  nn::Linear fc = register_module("fc", nn::Linear(10, 1));
  Tensor forward(const Tensor& x) { return fc(x); }
};

int main(int argc, char** argv) {
  try {
    dist::init(argc, argv);  // one process, or many under mpirun (each then trains its own copy)
  } catch (const Error& e) {  // e.g. a malformed BRAID_DIST_TIMEOUT: a message and exit 1 on every rank, no abort
    std::fprintf(stderr, "simple_nn: %s\n", e.what());
    return 1;
  }
  Device device = dist::local_device();  // this rank's GPU when there is one, else the CPU
  std::printf("Using device: %s\n", device.str().c_str());
  SimpleNN model;
  model.to(device);
  Tensor input = randn({64, 10}, device), target = randn({64, 1}, device);
  optim::SGD optimizer(model.parameters(), {.lr = 0.01});
  for (int epoch = 1; epoch <= 10; ++epoch) {
    optimizer.zero_grad();
    Tensor loss = nn::mse_loss(model.forward(input), target);
    loss.backward();
    optimizer.step();
    std::printf("Epoch %d, Loss: %f\n", epoch, loss.item<float>());
  }
  return 0;
}
