// Umbrella header: everything a rankflow program needs.
#pragma once

#include <rankflow/runtime/config.hpp>
#include <rankflow/core/error.hpp>
#include <rankflow/core/log.hpp>
#include <rankflow/core/serialize.hpp>
#include <rankflow/core/signals.hpp>
#include <rankflow/runtime/partition.hpp>
#include <rankflow/runtime/resources.hpp>
#include <rankflow/runtime/runtime.hpp>
#include <rankflow/runtime/threads.hpp>
#include <rankflow/runtime/with_slurm.hpp>
#include <rankflow/tracking/experiment.hpp>
#include <rankflow/runtime/errors.hpp>
#include <rankflow/tracking/errors.hpp>
#include <rankflow/tracking/run.hpp>
#include <rankflow/tracking/types.hpp>
