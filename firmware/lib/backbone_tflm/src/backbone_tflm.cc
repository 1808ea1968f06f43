// fedcore/backbone.h over tflite::MicroInterpreter: the generated model array, the generated
// MicroMutableOpResolver holding exactly the model's ops, a 16-byte aligned static arena of
// FEDHEAD_ARENA_BYTES. Everything is static: no heap, constructed once by backbone_init().
#include <cstdint>
#include <cstring>
#include <new>

#include "backbone_tflm/backbone_tflm.h"
#include "fedcore/backbone.h"
#include "fedcore/version.h"  // FEDCORE_GENERATED_API_EXPECTED, before model_config.h
#include "model_config.h"
#include "model_data.h"
#include "op_resolver.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_log.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

namespace {

alignas(16) uint8_t tensor_arena[FEDHEAD_ARENA_BYTES];

tflite::MicroMutableOpResolver<fedhead::kNumOps> op_resolver;

// Storage for the interpreter, constructed in place once the model checked out.
alignas(tflite::MicroInterpreter) uint8_t interpreter_storage[sizeof(tflite::MicroInterpreter)];
tflite::MicroInterpreter* interpreter = nullptr;
int init_status = -1;  // result of the one real initialisation; -1: not tried yet

bool io_matches_config(const TfLiteTensor* in, const TfLiteTensor* out) {
  // The device logic sizes its buffers from model_config.h: the model must agree exactly.
  return in != nullptr && out != nullptr && in->type == kTfLiteInt8 &&
         out->type == kTfLiteInt8 && in->bytes == FEDHEAD_INPUT_LEN &&
         out->bytes == FEDHEAD_EMBED_DIM &&
         in->params.zero_point == FEDHEAD_INPUT_ZERO_POINT &&
         out->params.zero_point == FEDHEAD_EMBED_ZERO_POINT &&
         out->params.scale == FEDHEAD_EMBED_SCALE;
}

int initialise() {
  const tflite::Model* model = tflite::GetModel(fedhead_model_tflite);
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    MicroPrintf("backbone_tflm: model schema %u, runtime expects %d",
                static_cast<unsigned>(model->version()), TFLITE_SCHEMA_VERSION);
    return 1;
  }
  if (fedhead::RegisterOps(op_resolver) != kTfLiteOk) {
    MicroPrintf("backbone_tflm: registering the model's ops failed");
    return 2;
  }
  interpreter = new (interpreter_storage)
      tflite::MicroInterpreter(model, op_resolver, tensor_arena, sizeof tensor_arena);
  if (interpreter->AllocateTensors() != kTfLiteOk) {
    MicroPrintf("backbone_tflm: arena of %u bytes too small", (unsigned)sizeof tensor_arena);
    return 3;
  }
  if (!io_matches_config(interpreter->input(0), interpreter->output(0))) {
    MicroPrintf("backbone_tflm: model tensors differ from model_config.h: regenerate");
    return 4;
  }
  return 0;
}

}  // namespace

extern "C" int backbone_init(void) {
  if (init_status < 0) {
    init_status = initialise();
  }
  return init_status;
}

extern "C" int backbone_embed(const int8_t* input, float* embedding) {
  if (backbone_init() != 0) {
    return 1;
  }
  TfLiteTensor* in = interpreter->input(0);
  std::memcpy(in->data.int8, input, FEDHEAD_INPUT_LEN);
  if (interpreter->Invoke() != kTfLiteOk) {
    return 2;
  }
  const TfLiteTensor* out = interpreter->output(0);
  // Same dequantization as backbone_ref: (q - zero_point) * scale in float32.
  for (int i = 0; i < FEDHEAD_EMBED_DIM; i++) {
    embedding[i] = static_cast<float>(out->data.int8[i] - out->params.zero_point) *
                   out->params.scale;
  }
  return 0;
}

extern "C" size_t backbone_tflm_arena_used(void) {
  return (init_status == 0) ? interpreter->arena_used_bytes() : 0;
}
