import Testing
@testable import SkeinSearch

@Suite("Searchers")
struct SearchTests {
    let space = SearchSpace([
        ("lr", .choice([.double(0.1), .double(0.01), .double(0.001)])),
        ("hidden", .choice([.list([.int(64)]), .list([.int(128), .int(64)])])),
        ("epochs", .fixed(.int(3))),
    ])

    @Test("grid: every point exactly once, in order, then exhausted")
    func grid() throws {
        let g = try GridSearcher(space: space)
        #expect(g.capacity == 6)
        let points = (0..<6).map { g.suggest(trialNumber: $0)! }
        #expect(Set(points).count == 6)
        #expect(points[0].json == #"{"lr":0.1,"hidden":[64],"epochs":3}"#)
        #expect(points[1].json == #"{"lr":0.1,"hidden":[128,64],"epochs":3}"#)
        #expect(g.suggest(trialNumber: 6) == nil)
        #expect(throws: SearchError.notEnumerable("x")) { try GridSearcher(space: SearchSpace([("x", .uniform(low: 0, high: 1))])) }
    }

    @Test("random: trial k depends only on the seed and k; distributions stay in range")
    func random() throws {
        let s = SearchSpace([
            ("lr", .logUniform(low: 1e-4, high: 1e-1)), ("dropout", .uniform(low: 0, high: 0.5)),
            ("layers", .intUniform(low: 1, high: 4)), ("width", .quantizedUniform(low: 32, high: 256, q: 32)),
            ("act", .choice([.string("relu"), .string("gelu")])),
        ])
        let a = try RandomSearcher(space: s, seed: 9), b = try RandomSearcher(space: s, seed: 9), c = try RandomSearcher(space: s, seed: 10)
        // Asking in a different order (as different workers finishing first would) changes nothing.
        let forward = (0..<50).map { a.suggest(trialNumber: $0)! }
        let backward = (0..<50).reversed().map { b.suggest(trialNumber: $0)! }.reversed()
        #expect(forward == Array(backward))
        #expect(forward != (0..<50).map { c.suggest(trialNumber: $0)! })
        for p in forward {
            let lr = p["lr"]!.number!, d = p["dropout"]!.number!, w = p["width"]!.number!
            #expect(lr >= 1e-4 && lr <= 1e-1 && d >= 0 && d <= 0.5)
            #expect(w >= 32 && w <= 256 && w.truncatingRemainder(dividingBy: 32) == 0)
            guard case let .int(layers) = p["layers"]! else { Issue.record("layers not an int"); continue }
            #expect((1...4).contains(layers))
        }
        #expect(Set(forward.map { $0["act"]! }).count == 2)
        #expect(throws: SearchError.self) { try RandomSearcher(space: SearchSpace([("lr", .logUniform(low: 0, high: 1))]), seed: 1) }
    }
}
