#!/usr/bin/env node
// `npx hsd-build-addon`, run from a project that depends on hsd-llm: compiles the addon from source into this
// package's prebuilds/<platform>-<arch>/ (for a platform without a prebuilt one). Needs a C++17 compiler, git, and
// node-gyp's Python 3 (or --direct). The options are scripts/build-addon.mjs's (--help).
import "../scripts/build-addon.mjs";
