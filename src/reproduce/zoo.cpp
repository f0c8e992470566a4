#include "reproduce/zoo.h"

namespace pelab {

const std::vector<std::string>& zoo_pes() {
  static const std::vector<std::string> pes{"rope", "xpos", "prope", "kerple", "fire", "cope"};
  return pes;
}

}  // namespace pelab
