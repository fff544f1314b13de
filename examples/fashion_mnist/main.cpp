// Trains a 784-256-128-10 MLP on Fashion-MNIST (Debian's dataset-fashion-mnist) with SGD + momentum and a cosine
// learning-rate schedule, printing progress and the test accuracy after each epoch.
#include <braid/braid.h>

#include <chrono>
#include <cstdio>
#include <cxxopts.hpp>
#include <filesystem>

using namespace braid;

namespace {

Device parse_device(const std::string& name) {
  if (name == "cpu") return Device::cpu();
  if (name == "cuda") return Device::cuda(0);
  if (name.rfind("cuda:", 0) == 0) return Device::cuda(std::stoi(name.substr(5)));
  BRAID_FAIL("--device: expected cpu, cuda or cuda:N, got '", name, "'");
}

double accuracy(nn::Sequential& model, const Tensor& images, const Tensor& labels) {
  NoGradGuard no_grad;
  model->eval();
  Tensor predicted = argmax(model(images), 1);
  model->train();
  return ops::mean(ops::to_dtype(ops::binary(ops::BinaryOp::Eq, predicted, labels), DType::Float64)).item<double>();
}

}  // namespace

int main(int argc, char** argv) {
  cxxopts::Options cli("fashion_mnist", "Train an MLP on Fashion-MNIST with Braid");
  cli.add_options()
    ("epochs", "training epochs", cxxopts::value<int>()->default_value("15"))
    ("batch-size", "samples per step", cxxopts::value<int64_t>()->default_value("128"))
    ("lr", "initial learning rate (cosine-annealed to 0)", cxxopts::value<double>()->default_value("0.05"))
    ("momentum", "SGD momentum", cxxopts::value<double>()->default_value("0.9"))
    ("threads", "CPU threads (0: OMP_NUM_THREADS or all cores)", cxxopts::value<int>()->default_value("0"))
    ("workers", "background batch-loading threads", cxxopts::value<int>()->default_value("1"))
    ("seed", "random seed for weights and shuffling", cxxopts::value<uint64_t>()->default_value("0"))
    ("data", "folder with the Fashion-MNIST .gz files", cxxopts::value<std::string>()->default_value(
        data::default_fashion_mnist_root))
    ("checkpoint", "save the model here (.safetensors) after each epoch", cxxopts::value<std::string>())
    ("resume", "load the model from this checkpoint before training", cxxopts::value<std::string>())
    ("device", "cpu, cuda or cuda:N (default: cuda when a GPU is visible)", cxxopts::value<std::string>())
    ("log-every", "print a progress line every N steps", cxxopts::value<int>()->default_value("100"))
    ("h,help", "show this help");
  try {
    auto args = cli.parse(argc, argv);
    if (args.count("help")) {
      std::printf("%s\n", cli.help().c_str());
      return 0;
    }
    if (int threads = args["threads"].as<int>(); threads > 0) set_num_threads(threads);
    const int epochs = args["epochs"].as<int>();
    const int64_t batch_size = args["batch-size"].as<int64_t>();
    const int log_every = std::max(1, args["log-every"].as<int>());
    manual_seed(args["seed"].as<uint64_t>());

    auto train = data::load_fashion_mnist(args["data"].as<std::string>(), true);
    auto test = data::load_fashion_mnist(args["data"].as<std::string>(), false);
    std::printf("Fashion-MNIST: %lld training and %lld test images, %d threads\n", (long long)train->size(),
                (long long)test->size(), get_num_threads());

    Device device = args.count("device") ? parse_device(args["device"].as<std::string>())
                                         : (cuda::is_available() ? Device::cuda(0) : Device::cpu());
    BRAID_CHECK(device.is_cpu() || device.index < cuda::device_count(), "--device: ", device,
                " is not available (", cuda::device_count(), " CUDA devices visible)");
    nn::Sequential model(nn::Linear(784, 256), nn::ReLU(), nn::Linear(256, 128), nn::ReLU(), nn::Linear(128, 10));
    if (args.count("resume")) {
      nn::load(*model, args["resume"].as<std::string>());
      std::printf("Resumed from %s\n", args["resume"].as<std::string>().c_str());
    }
    model->to(device);
    Tensor test_images = to(test->data(), device), test_labels = to(test->targets(), device);
    optim::SGD optimizer(model->parameters(), {.lr = args["lr"].as<double>(), .momentum = args["momentum"].as<double>()});
    data::DataLoader loader(train, {.batch_size = batch_size,
                                    .shuffle = true,
                                    .seed = args["seed"].as<uint64_t>(),
                                    .num_workers = args["workers"].as<int>()});
    optim::CosineAnnealingLR schedule(optimizer, int64_t(epochs) * loader.size());

    for (int epoch = 1; epoch <= epochs; ++epoch) {
      auto start = std::chrono::steady_clock::now();
      int64_t step = 0, seen = 0;
      Tensor loss_sum = zeros({}, device);  // summed on the device: reading it each step would wait for the GPU
      for (auto& batch : loader) {
        optimizer.zero_grad();
        Tensor loss = nn::cross_entropy(model(to(batch.data, device)), to(batch.target, device));
        loss.backward();
        optimizer.step();
        schedule.step();
        ops::add_(loss_sum, loss.detach());
        seen += batch.data.size(0);
        if (++step % log_every == 0)
          std::printf("  epoch %d step %4lld/%lld  loss %.4f\n", epoch, (long long)step, (long long)loader.size(),
                      loss_sum.item<double>() / double(step));
      }
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      double acc = accuracy(model, test_images, test_labels);
      std::printf("Epoch %d (%s): train loss %.4f, test accuracy %.2f%%, %.1f s (%.0f samples/s)\n", epoch,
                  device.str().c_str(),
                  loss_sum.item<double>() / double(step), 100 * acc, secs, double(seen) / secs);
      std::fflush(stdout);
      if (args.count("checkpoint")) nn::save(*model, args["checkpoint"].as<std::string>());
    }
    return 0;
  } catch (const cxxopts::exceptions::exception& e) {
    std::fprintf(stderr, "fashion_mnist: %s\n%s\n", e.what(), cli.help().c_str());
    return 2;
  } catch (const Error& e) {
    std::fprintf(stderr, "fashion_mnist: %s\n", e.what());
    return 1;
  }
}
