// Training and evaluation of a Model on a Dataset with one backend.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/data.hpp"
#include "engine/model.hpp"
#include "engine/optimizer.hpp"
#include "engine/program.hpp"
#include "engine/util/fields.hpp"

namespace iotnas {

struct TrainConfig {
  int epochs = 10;
  int batch = 128;
  uint64_t seed = 0;  // data order and augmentation (weights are initialised by make_model)
  OptimizerConfig optimizer;
  std::optional<bool> augment;  // default: the dataset's own default
  double val_fraction = 0.0;    // share of the training set held out for validation
  BackendKind backend = BackendKind::portable;
  bool eval_each_epoch = true;  // test (and validation) accuracy after every epoch
  // Evaluation batch; apply_recipe caps it at the training batch: a model that trains at batch B
  // fits in memory at B, not necessarily at 256.
  int eval_batch = 256;
};

// What determines a trained model besides the model, the data and the seed (with them it keys a
// training run in a run's store: docs/run.md "training"). The defaults are a run's.
struct TrainRecipe {
  int epochs = 3;
  int batch = 128;
  std::string optimizer = "sgd";  // OptimizerConfig::kind
  double lr = 0.05;
  double momentum = 0.9;
  bool nesterov = true;
  double weight_decay = 5e-4;
  std::string schedule = "cosine";
  double warmup_epochs = 0;
  std::string augment = "auto";  // "auto" (the dataset's default), "on", "off"
  int64_t train_images = 0;      // 0: the whole training split; else a class-balanced subset
};

// The most images a subset may ask for (train_images, a run's eval.images): a split holds at most
// 2^31 - 1 images (engine/data). Larger counts are refused, not read as "the whole split".
inline constexpr int64_t kMaxSplitImages = 2147483647;
static_assert(kMaxLr == 10 && kMaxWarmupEpochs == 1000, "the recipe's rules below name them");

// The recipe's fields: JSON keys, ranges of a run config, help and `iotnas train`'s flags.
inline std::span<const fields::Field<TrainRecipe>> recipe_fields() {
  using fields::at;
  using R = TrainRecipe;
  static const std::vector<fields::Field<R>> table = {
      {.key = "epochs",
       .ref = at<&R::epochs>,
       .help = "Training epochs",
       .min = 1,
       .max = 10000,
       .flag = "--epochs"},
      {.key = "batch",
       .ref = at<&R::batch>,
       .help = "Batch size",
       .min = 1,
       .max = 65536,
       .flag = "--batch"},
      {.key = "optimizer",
       .ref = at<&R::optimizer>,
       .help = "sgd or adam",
       .choices = {"sgd", "adam"},
       .flag = "--optimizer"},
      {.key = "lr",
       .ref = at<&R::lr>,
       .help = "Peak learning rate",
       .min = 0,
       .max = kMaxLr,
       .min_open = true,
       .rule = "must be a learning rate in (0, 10]",
       .flag = "--lr"},
      {.key = "momentum",
       .ref = at<&R::momentum>,
       .help = "SGD momentum",
       .min = 0,
       .max = 1,
       .max_open = true,
       .flag = "--momentum"},
      {.key = "nesterov",
       .ref = at<&R::nesterov>,
       .help = "Nesterov momentum",
       .flag = "--nesterov,!--no-nesterov"},
      {.key = "weight_decay",
       .ref = at<&R::weight_decay>,
       .help = "L2 on conv/dense weights",
       .min = 0,
       .max = 1,
       .max_open = true,
       .flag = "--weight-decay"},
      {.key = "schedule",
       .ref = at<&R::schedule>,
       .help = "Learning-rate schedule: cosine or constant",
       .choices = {"cosine", "constant"},
       .flag = "--schedule"},
      {.key = "warmup_epochs",
       .ref = at<&R::warmup_epochs>,
       .help = "Linear warm-up epochs",
       .min = 0,
       .also =
           [](const R& r) {
             return r.warmup_epochs <= std::min<double>(r.epochs, kMaxWarmupEpochs);
           },
       .rule = "must be in [0, training.epochs] and at most 1000",
       .flag = "--warmup"},
      {.key = "augment",
       .ref = at<&R::augment>,
       .help = "auto (the dataset's default), on or off",
       .choices = {"auto", "on", "off"},
       .flag = "--augment"},
      {.key = "train_images",
       .ref = at<&R::train_images>,
       .help = "Class-balanced subset of the training split (0: all of it)",
       .min = 0,
       .max = double(kMaxSplitImages),
       .rule = "must be in [0, 2147483647] (0 or more than the split holds: all of it)"},
  };
  return table;
}

// The training config of a recipe (train_images is the caller's: it chooses the data).
inline void apply_recipe(const TrainRecipe& r, TrainConfig& c) {
  c.epochs = r.epochs;
  c.batch = r.batch;
  c.eval_batch = std::min(c.eval_batch, r.batch);
  c.optimizer.kind = r.optimizer;
  c.optimizer.lr = r.lr;
  c.optimizer.momentum = r.momentum;
  c.optimizer.nesterov = r.nesterov;
  c.optimizer.weight_decay = r.weight_decay;
  c.optimizer.schedule = r.schedule;
  c.optimizer.warmup_epochs = r.warmup_epochs;
  c.augment.reset();
  if (r.augment == "on") c.augment = true;
  if (r.augment == "off") c.augment = false;
}

struct EpochStats {
  int epoch = 0;              // 1-based
  double loss = 0;            // mean training loss over the epoch
  double train_accuracy = 0;  // on the training batches as seen (augmented)
  double val_accuracy = -1;   // -1 when there is no validation split
  double test_accuracy = -1;  // -1 when not evaluated this epoch
  double seconds = 0;         // training time of the epoch (evaluation excluded)
  double images_per_second = 0;
  double lr = 0;  // at the epoch's last step
};

struct TrainReport {
  std::vector<EpochStats> epochs;
  double test_accuracy = 0;  // final model on the whole test split
  double val_accuracy = -1;
  double train_seconds = 0;      // sum of epoch training times
  double images_per_second = 0;  // training images / train_seconds
  int64_t images = 0;            // training images processed
};

struct TrainProgress {
  int epoch = 0, epochs = 0;  // 1-based current epoch
  int64_t step = 0, steps_per_epoch = 0;
  double loss = 0;             // running mean over the epoch so far
  double elapsed_seconds = 0;  // since training began (evaluation included)
  double eta_seconds = 0;
  double images_per_second = 0;          // this epoch so far
  const EpochStats* finished = nullptr;  // set once per epoch, when it ends
};
using ProgressFn = std::function<void(const TrainProgress&)>;

// Trains `model` in place. Throws iotnas::Error when the loss becomes NaN or infinite (naming the
// epoch and step, suggesting a lower --lr) or when the model does not fit the dataset.
TrainReport train(Model& model, const Dataset& data, const TrainConfig& config,
                  const ProgressFn& progress = {});

// Normalised images of one split held in memory, for repeated evaluation (e.g. 184 formats).
struct EvalSet {
  Shape shape;
  std::vector<float> images;    // [n, C, H, W]
  std::vector<int32_t> labels;  // [n]
  int64_t size() const { return int64_t(labels.size()); }
};
// indices: into the split (empty = all of it).
EvalSet make_eval_set(const Dataset& data, bool test_split,
                      const std::vector<int32_t>& indices = {});

struct EvalResult {
  double accuracy = 0;  // fraction in [0, 1]
  double loss = 0;      // mean cross-entropy
  int64_t images = 0;
  double seconds = 0;
};

// Inference of a model (batch norm folded) over eval sets, reusable across parameter sets: the
// precision sweep installs rounded parameters and a rounding hook between runs.
class Evaluator {
 public:
  Evaluator(const Model& model, BackendKind backend, int batch = 256);
  const Model& inference_model() const { return folded_; }
  // Replaces the inference parameters (same layout as inference_model().params).
  void set_params(const std::vector<float>& params);
  void set_hook(ActivationHook hook);
  EvalResult run(const EvalSet& set);

 private:
  Model folded_;
  std::vector<float> params_;
  std::unique_ptr<Program> program_;
  int batch_;
};

// Checks that the model's input shape and class count fit the dataset; throws iotnas::Error.
void check_model_fits(const Model& model, const Dataset& data);

}  // namespace iotnas
