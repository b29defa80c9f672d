// Must NOT compile: core is the ground floor and sees no layer above it
// (test layering_core_sees_tracking).
#include <rankflow/tracking/run.hpp>
