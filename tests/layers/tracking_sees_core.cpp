// Must compile: the control for the two tests that must not (a broken set-up
// would make them "fail" for the wrong reason).
#include <rankflow/core/error.hpp>
#include <rankflow/tracking/run.hpp>

int layering_control() { return rankflow::tracking_mode::async == rankflow::tracking_mode::sync ? 1 : 0; }
