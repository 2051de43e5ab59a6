import Testing
import SkeinReport

@Suite("Straggler attribution")
struct StragglerTests {
    @Test("the straggler is the predecessor of the rank that waits longest, when that wait stands out")
    func fromWaits() {
        // Two ranks: rank 1 waited for rank 0.
        let two = Stragglers.straggler(waits: [0.01, 0.9])
        #expect(two?.rank == 0 && two?.waiter == 1)
        // Four ranks: rank 3 waits for rank 2; the rest barely wait.
        #expect(Stragglers.straggler(waits: [0.02, 0.03, 0.02, 1.5])?.rank == 2)
        // Rank 0 waits for the last rank.
        #expect(Stragglers.straggler(waits: [1.5, 0.03, 0.02, 0.02])?.rank == 3)
        // Balanced, tiny, or single-rank: nobody.
        #expect(Stragglers.straggler(waits: [0.4, 0.5]) == nil)
        #expect(Stragglers.straggler(waits: [0.001, 0.04]) == nil)
        #expect(Stragglers.straggler(waits: [2.0]) == nil)
        #expect(Stragglers.straggler(waits: []) == nil)
    }
}
