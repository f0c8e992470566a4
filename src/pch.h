// Precompiled header: the expensive, stable includes shared by every translation unit.
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>
