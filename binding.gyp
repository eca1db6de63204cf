# Built by scripts/build-addon.mjs, which writes build/native-build.json (llama.cpp header dirs, link flags) first.
# Run `npm run build:addon`, not node-gyp directly. llama.cpp is not linked: native/llama_api.cc loads it at run time.
{
  "targets": [
    {
      "target_name": "hsd_native",
      "sources": [
        "native/addon.cc",
        "native/logging.cc",
        "native/model.cc",
        "native/context.cc",
        "native/sampling_transform.cc",
        "native/llama_api.cc",
        "native/rpc.cc",
        "native/channel.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node -p \"require('./build/native-build.json').includeDirs.join(' ')\")"
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O3", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "libraries": ["<!@(node -p \"require('./build/native-build.json').libraries.join(' ')\")"],
      "ldflags": ["<!@(node -p \"require('./build/native-build.json').ldflags.join(' ')\")"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "MACOSX_DEPLOYMENT_TARGET": "11.0",
        "OTHER_LDFLAGS": ["<!@(node -p \"require('./build/native-build.json').ldflags.join(' ')\")"]
      },
      "msvs_settings": {
        "VCCLCompilerTool": { "ExceptionHandling": 1, "AdditionalOptions": ["/std:c++17"] }
      }
    }
  ]
}
