// myriad_compile_blob: compile an OpenVINO 2021.4 IR into a Myriad X blob with no device attached,
// or list which of its layers the Myriad plugin supports.
//
// The openvino==2021.4.2 wheel ships libinference_engine.so but no headers, so the few classes
// used here are declared by hand. Member functions resolve by their mangled names (built with
// the old libstdc++ string ABI, as the wheel is). Objects the library returns by value get more
// room than the real ones need and are never destroyed: their destructors are inline in the SDK
// headers and not exported, and this process exits right after.
//
//   myriad_compile_blob version
//   myriad_compile_blob read MODEL.xml                  -> reads the IR (validates it), nothing else
//   myriad_compile_blob query MODEL.xml                 -> one supported layer name per line
//   myriad_compile_blob compile MODEL.xml OUT.blob [-ip PRECISION] [-op PRECISION] [-iop NAME:PRECISION,...]
//                               [-il LAYOUT] [-ol LAYOUT] [-iol NAME:LAYOUT,...] [-iop1 NAME:PRECISION]
//                               [-iol1 NAME:LAYOUT] [KEY=VALUE ...]
//   (as compile_tool's flags: -iop/-iol override -ip/-op and -il/-ol for the tensors they name;
//   -iop1/-iol1 NAME:VALUE name one tensor each, so a name may hold a comma)
#include <cstdint>
#include <cstdio>
#include <exception>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>

namespace InferenceEngine {
struct Precision {  // ie_precision.hpp: PrecisionInfo {size_t; const char*; bool; uint8_t enum}
    size_t bitsSize;
    const char* name;
    bool isFloat;
    uint8_t value;
};
// ie_common.h (2021.4): the memory order of a tensor's data; dims stay in canonical (N, C, H, W) order.
enum Layout : uint8_t { ANY = 0, NCHW = 1, NHWC = 2, NCDHW = 3, NDHWC = 4, C = 96, CHW = 128, HWC = 129, HW = 192, NC = 193 };
struct Version {  // ie_version.hpp
    struct { int major; int minor; } apiVersion;
    const char* buildNumber;
    const char* description;
};
class Data {
public:
    void setPrecision(const Precision& precision);
    void setLayout(Layout layout);
    const std::string& getName() const;
};
class InputInfo;
class CNNNetwork {
public:
    alignas(16) unsigned char storage[512];
    std::map<std::string, std::shared_ptr<InputInfo>> getInputsInfo() const;
    std::map<std::string, std::shared_ptr<Data>> getOutputsInfo() const;
};
class ExecutableNetwork {
public:
    alignas(16) unsigned char storage[512];
    void Export(const std::string& modelFileName);
};
struct QueryNetworkResult {  // ie_common.h: {map supportedLayersMap; StatusCode rc; ResponseDesc resp}
    std::map<std::string, std::string> supportedLayersMap;
    unsigned char rest[8192];  // rc and a 4096-byte message; trivially destructible
};
class Core {
public:
    alignas(16) unsigned char storage[512];
    explicit Core(const std::string& xmlConfigFile);
    CNNNetwork ReadNetwork(const std::string& modelPath, const std::string& binPath) const;
    QueryNetworkResult QueryNetwork(const CNNNetwork& network, const std::string& deviceName,
                                    const std::map<std::string, std::string>& config) const;
    ExecutableNetwork LoadNetwork(const CNNNetwork& network, const std::string& deviceName,
                                  const std::map<std::string, std::string>& config);
};
}  // namespace InferenceEngine

extern "C" const InferenceEngine::Version* GetInferenceEngineVersion();

namespace ie = InferenceEngine;

namespace {
// Lets the plugin compile for the Myriad X without asking a device which platform it is.
const std::map<std::string, std::string> kBaseConfig{{"VPU_MYRIAD_PLATFORM", "VPU_MYRIAD_2480"}};

// ie_input_info.hpp (2021.4): InputInfo { PreProcessInfo _preProcessInfo; DataPtr _inputData; },
// no virtual members; PreProcessInfo is { std::vector<...>; three enums } = 40 bytes.
constexpr size_t kInputDataOffset = 40;

ie::Data* input_data(const std::string& name, const std::shared_ptr<ie::InputInfo>& info) {
    auto* data_ptr = reinterpret_cast<const std::shared_ptr<ie::Data>*>(
        reinterpret_cast<const unsigned char*>(info.get()) + kInputDataOffset);
    ie::Data* data = data_ptr->get();
    if (data == nullptr || data->getName() != name) {
        throw std::runtime_error("internal error: InputInfo layout differs from OpenVINO 2021.4");
    }
    return data;
}

ie::Precision precision_from_name(const std::string& name) {
    struct Row { const char* name; uint8_t value; size_t bits; bool is_float; };
    static const Row rows[] = {  // ie_precision.hpp ePrecision values
        {"FP32", 10, 32, true}, {"FP16", 11, 16, true}, {"BF16", 12, 16, true},
        {"I16", 30, 16, false}, {"U8", 40, 8, false},   {"BOOL", 41, 8, false},
        {"I8", 50, 8, false},   {"U16", 60, 16, false}, {"I32", 70, 32, false},
        {"I64", 72, 64, false}, {"U64", 73, 64, false},
    };
    for (const Row& row : rows) {
        if (name == row.name) return ie::Precision{row.bits, row.name, row.is_float, row.value};
    }
    throw std::invalid_argument("unknown precision " + name);
}

ie::Layout layout_from_name(const std::string& name) {
    struct Row { const char* name; ie::Layout value; };
    static const Row rows[] = {{"NCHW", ie::NCHW}, {"NHWC", ie::NHWC}, {"NCDHW", ie::NCDHW}, {"NDHWC", ie::NDHWC},
                               {"C", ie::C}, {"CHW", ie::CHW}, {"HWC", ie::HWC}, {"HW", ie::HW}, {"NC", ie::NC}};
    for (const Row& row : rows) {
        if (name == row.name) return row.value;
    }
    throw std::invalid_argument("unknown layout " + name);
}

// "name:VALUE,name:VALUE" (compile_tool's -iop/-iol) -> {name: VALUE}; false if an item has no colon.
bool parse_named_list(const std::string& list, std::map<std::string, std::string>& into) {
    size_t start = 0;
    while (start < list.size()) {
        size_t comma = list.find(',', start);
        if (comma == std::string::npos) comma = list.size();
        const std::string item = list.substr(start, comma - start);
        const size_t colon = item.rfind(':');
        if (colon == std::string::npos) return false;
        into[item.substr(0, colon)] = item.substr(colon + 1);
        start = comma + 1;
    }
    return true;
}

int usage() {
    std::fprintf(stderr,
                 "usage: myriad_compile_blob version\n"
                 "       myriad_compile_blob read MODEL.xml\n"
                 "       myriad_compile_blob query MODEL.xml\n"
                 "       myriad_compile_blob compile MODEL.xml OUT.blob [-ip P] [-op P] [-iop NAME:P,...]\n"
                 "                           [-il L] [-ol L] [-iol NAME:L,...] [-iop1 NAME:P] [-iol1 NAME:L]\n"
                 "                           [KEY=VALUE ...]\n");
    return 64;
}

int compile(int argc, char** argv) {
    const std::string model = argv[2];
    const std::string blob = argv[3];
    std::string input_precision, output_precision, input_layout, output_layout;
    std::map<std::string, std::string> tensor_precisions;  // -iop name:P,name:P (as compile_tool)
    std::map<std::string, std::string> tensor_layouts;     // -iol name:L,name:L
    std::map<std::string, std::string> config = kBaseConfig;
    for (int i = 4; i < argc; ++i) {
        const std::string arg = argv[i];
        const size_t equals = arg.find('=');
        if ((arg == "-ip" || arg == "-op") && i + 1 < argc) {
            (arg == "-ip" ? input_precision : output_precision) = argv[++i];
        } else if ((arg == "-il" || arg == "-ol") && i + 1 < argc) {
            (arg == "-il" ? input_layout : output_layout) = argv[++i];
        } else if ((arg == "-iop" || arg == "-iol") && i + 1 < argc) {
            if (!parse_named_list(argv[++i], arg == "-iop" ? tensor_precisions : tensor_layouts)) return usage();
        } else if ((arg == "-iop1" || arg == "-iol1") && i + 1 < argc) {
            const std::string item = argv[++i];
            const size_t colon = item.rfind(':');
            if (colon == std::string::npos) return usage();
            (arg == "-iop1" ? tensor_precisions : tensor_layouts)[item.substr(0, colon)] = item.substr(colon + 1);
        } else if (equals != std::string::npos) {
            config[arg.substr(0, equals)] = arg.substr(equals + 1);
        } else {
            return usage();
        }
    }
    auto* core = new ie::Core(std::string());
    auto* network = new ie::CNNNetwork(core->ReadNetwork(model, std::string()));
    // As compile_tool -ip/-op: set I/O precision on the network before loading it.
    if (!input_precision.empty()) {
        const ie::Precision precision = precision_from_name(input_precision);
        for (const auto& entry : network->getInputsInfo())
            input_data(entry.first, entry.second)->setPrecision(precision);
    }
    if (!output_precision.empty()) {
        const ie::Precision precision = precision_from_name(output_precision);
        for (const auto& entry : network->getOutputsInfo()) entry.second->setPrecision(precision);
    }
    if (!input_layout.empty()) {
        const ie::Layout layout = layout_from_name(input_layout);
        for (const auto& entry : network->getInputsInfo()) input_data(entry.first, entry.second)->setLayout(layout);
    }
    if (!output_layout.empty()) {
        const ie::Layout layout = layout_from_name(output_layout);
        for (const auto& entry : network->getOutputsInfo()) entry.second->setLayout(layout);
    }
    const auto inputs = network->getInputsInfo();
    const auto outputs = network->getOutputsInfo();
    // The tensor a -iop/-iol item names: an input's or an output's Data.
    auto named = [&](const std::string& name, const char* flag) -> ie::Data* {
        const auto input = inputs.find(name);
        if (input != inputs.end()) return input_data(input->first, input->second);
        const auto output = outputs.find(name);
        if (output != outputs.end()) return output->second.get();
        throw std::invalid_argument(std::string(flag) + " names " + name + ", which is no input or output of the network");
    };
    for (const auto& entry : tensor_precisions) named(entry.first, "-iop")->setPrecision(precision_from_name(entry.second));
    for (const auto& entry : tensor_layouts) named(entry.first, "-iol")->setLayout(layout_from_name(entry.second));
    auto* executable = new ie::ExecutableNetwork(core->LoadNetwork(*network, "MYRIAD", config));
    executable->Export(blob);
    return 0;
}

int read(const std::string& model) {
    auto* core = new ie::Core(std::string());
    new ie::CNNNetwork(core->ReadNetwork(model, std::string()));
    return 0;
}

int query(const std::string& model) {
    auto* core = new ie::Core(std::string());
    auto* network = new ie::CNNNetwork(core->ReadNetwork(model, std::string()));
    auto* result = new ie::QueryNetworkResult(core->QueryNetwork(*network, "MYRIAD", kBaseConfig));
    for (const auto& entry : result->supportedLayersMap) std::printf("%s\n", entry.first.c_str());
    return 0;
}
}  // namespace

int main(int argc, char** argv) {
    const std::string command = argc > 1 ? argv[1] : "";
    try {
        if (command == "version" && argc == 2) {
            const ie::Version* version = GetInferenceEngineVersion();
            std::printf("%s\n", version->buildNumber);
            return 0;
        }
        if (command == "read" && argc == 3) return read(argv[2]);
        if (command == "query" && argc == 3) return query(argv[2]);
        if (command == "compile" && argc >= 4) return compile(argc, argv);
    } catch (const std::exception& error) {
        std::fprintf(stderr, "ERROR: %s\n", error.what());
        return 1;
    }
    return usage();
}
