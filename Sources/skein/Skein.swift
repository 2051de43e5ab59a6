import ArgumentParser
import SkeinTensor

@main
struct Skein: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "skein",
        abstract: "Distributed hyperparameter sweeps and data-parallel training.",
        subcommands: [
            SweepCommand.self, CoordinatorCommand.self, WorkerCommand.self, Status.self, Workers.self, Leaderboard.self, TrialCommand.self,
            Export.self, Train.self,
        ]
    )

    static func main() async {
        BLASKernel.selectForThisCPU()
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}
