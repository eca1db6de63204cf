// SHA-256 (FIPS 180-4), written from the specification; used for vocabulary fingerprints.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace hsd {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t len);
  void updateU32(uint32_t v);  // little-endian
  void updateI32(int32_t v) { updateU32(static_cast<uint32_t>(v)); }
  void updateString(const char* s, size_t len);  // length-prefixed, so "ab"+"c" != "a"+"bc"
  std::string hexDigest();  // finishes the hash

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t bufLen_ = 0;
  uint64_t total_ = 0;
};

}  // namespace hsd
