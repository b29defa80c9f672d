// `--with slurm` (Metaflow's `--with batch`): the same program, started on a
// login node, writes a batch script sized from its command line, submits it
// with sbatch, prints the job id and the log, and with --wait follows the log
// and exits with the job's exit code.
//
//   ./bigsum --with slurm --ntasks 64 --time 02:00:00 --wait --rows 200000
//
// rankflow::Runtime does this before MPI starts; the functions are public so
// that the script can be checked without a cluster.
#pragma once

#include <string>
#include <vector>

namespace rankflow {

/// What `--with slurm` and its sizing flags asked for.
struct slurm_submission {
  bool requested = false;                 ///< --with slurm was given
  int ntasks = 1;                         ///< --ntasks N: MPI ranks
  int nodes = 0;                          ///< --nodes N (0: Slurm decides)
  int cpus_per_task = 0;                  ///< --cpus-per-task N (0: 1)
  std::string mem;                        ///< --mem SIZE, as sbatch takes it (e.g. 60G)
  std::string time;                       ///< --time LIMIT, as sbatch takes it (e.g. 02:00:00)
  std::string partition;                  ///< --partition NAME
  std::string job_dir = "rankflow-jobs";  ///< --job-dir: scripts and logs
  bool wait = false;                      ///< --wait: follow the log, exit with the job's code
};

/// Reads `--with slurm` and, only when it is there, the sizing flags above
/// (so a program's own --time or --wait is left alone otherwise). The other
/// arguments go to `rest`, in order. Throws usage_error on bad values.
slurm_submission parse_submission(const std::vector<std::string>& args, std::vector<std::string>* rest);

/// The batch script that runs `program args...` under mpirun in the
/// allocation, from directory `cwd`, logging to `log_pattern` (with %j).
std::string batch_script(const slurm_submission& s, const std::string& program, const std::vector<std::string>& args,
                         const std::string& cwd, const std::string& log_pattern, const std::string& origin);

/// Writes the script, submits it and reports; returns the exit code the
/// process should end with (the job's with --wait, else 0 once submitted).
int submit_with_slurm(const slurm_submission& s, const std::vector<std::string>& args, const std::string& origin);

}  // namespace rankflow
