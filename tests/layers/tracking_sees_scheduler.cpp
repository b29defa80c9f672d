// Must NOT compile: tracking is built on core only, so the scheduler's
// headers are not on its include path (test layering_tracking_sees_scheduler).
#include <rankflow/runtime/runtime.hpp>
