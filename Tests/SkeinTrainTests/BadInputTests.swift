import Foundation
import Testing
import SkeinTestSupport
@testable import SkeinTrain

func idxBytes(dims: [UInt32], data: [UInt8], magic: [UInt8] = [0, 0, 8]) -> [UInt8] {
    var b = magic + [UInt8(dims.count)]
    for d in dims { b += [UInt8(d >> 24), UInt8((d >> 16) & 0xFF), UInt8((d >> 8) & 0xFF), UInt8(d & 0xFF)] }
    return b + data
}

@Suite("Bad input")
struct BadInputTests {
    let dir = try! TemporaryDirectory.make(prefix: "bad")

    func write(_ name: String, _ bytes: [UInt8]) -> String {
        let path = "\(dir)/\(name)"
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        return path
    }

    func gzip(_ path: String) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/gzip")
        p.arguments = ["-kf", path]
        try p.run(); p.waitUntilExit()
        return path + ".gz"
    }

    @Test("a valid IDX file reads, plain and gzipped")
    func valid() throws {
        let path = write("ok.idx", idxBytes(dims: [3, 2, 2], data: Array(0..<12)))
        for p in [path, try gzip(path)] {
            let a = try IDXReader.read(p)
            #expect(a.dimensions == [3, 2, 2] && a.bytes == Array(0..<12) && a.recordSize == 4)
        }
    }

    @Test("a truncated IDX file names the file and the record where the data ends")
    func truncated() throws {
        let path = write("short.idx", idxBytes(dims: [5, 2, 2], data: Array(0..<9)))
        for p in [path, try gzip(path)] {
            #expect(throws: DataError(file: p, record: 2, reason: "truncated: header declares 5 records, data ends inside record 2")) {
                try IDXReader.read(p)
            }
        }
        let header = write("header.idx", [0, 0, 8, 3, 0, 0])
        #expect(throws: DataError(file: header, reason: "truncated header (dimensions)")) { try IDXReader.read(header) }
        // A gzip stream cut in the middle.
        let big = write("big.idx", idxBytes(dims: [100, 100], data: (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 7919) }))
        let gz = try gzip(big)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: gz))
        let cut = write("cut.idx.gz", Array(bytes.prefix(bytes.count / 2)))
        let error = #expect(throws: DataError.self) { try IDXReader.read(cut) }
        #expect(error?.file == cut)
    }

    @Test("a wrong magic number is refused with the bytes it found")
    func wrongMagic() {
        let path = write("magic.idx", [0x1F, 0x00, 0x08, 0x01, 0, 0, 0, 1, 5])
        #expect(throws: DataError(file: path, reason: "wrong magic number 0x1f000801 (expected 0x0000 then type and rank)")) {
            try IDXReader.read(path)
        }
        let float = write("float.idx", [0, 0, 0x0D, 1, 0, 0, 0, 1, 0, 0, 0, 0])
        #expect(throws: DataError.self) { try IDXReader.read(float) }
    }

    @Test("labels that do not match the images are refused")
    func labelMismatch() {
        let images = write("img.idx", idxBytes(dims: [2, 2, 2], data: Array(0..<8)))
        let labels = write("lab.idx", idxBytes(dims: [3], data: [0, 1, 2]))
        #expect(throws: DataError(file: labels, reason: "3 labels for 2 images in \(images)")) {
            try IDXReader.loadClassification(images: images, labels: labels, name: "x")
        }
        let badLabel = write("lab2.idx", idxBytes(dims: [2], data: [0, 12]))
        #expect(throws: DataError(file: badLabel, record: 1, reason: "label 12 outside 0..<10")) {
            try IDXReader.loadClassification(images: images, labels: badLabel, name: "x")
        }
    }

    @Test("CSV: a non-numeric cell names file, line and column")
    func csvNonNumeric() {
        let path = write("bad.csv", Array("a,b,label\n1,2,x\n3,oops,y\n".utf8))
        #expect(throws: DataError(file: path, line: 3, column: "b", reason: "'oops' is not a number")) {
            try CSVReader.load(path, labelColumn: "label", task: .classification)
        }
    }

    @Test("CSV: a ragged row names file and line")
    func csvRagged() {
        let path = write("ragged.csv", Array("a,b,label\n1,2,x\n3,4\n".utf8))
        #expect(throws: DataError(file: path, line: 3, reason: "ragged row: 2 fields, the header has 3")) {
            try CSVReader.load(path, labelColumn: "label", task: .classification)
        }
    }

    @Test("CSV: a missing label column, a bad regression label, and a valid file with quoted class names")
    func csvOther() throws {
        let path = write("ok.csv", Array("f1,\"f2\",species\n1.5,2,\"setosa\"\n0.5,-1,versicolor\n2,3,setosa\n".utf8))
        #expect(throws: DataError(file: path, line: 1, column: "kind", reason: "no such column in the header (f1, f2, species)")) {
            try CSVReader.load(path, labelColumn: "kind", task: .classification)
        }
        let (ds, names) = try CSVReader.load(path, labelColumn: "species", task: .classification)
        #expect(names == ["setosa", "versicolor"])
        #expect(ds.features == [1.5, 2, 0.5, -1, 2, 3])
        #expect(ds.targets == .classes([0, 1, 0], classCount: 2))
        #expect(throws: DataError(file: path, line: 2, column: "species", reason: "label 'setosa' is not a number")) {
            try CSVReader.load(path, labelColumn: "species", task: .regression)
        }
    }

    @Test("a damaged, truncated, foreign or wrong-version checkpoint gives a clear error")
    func badCheckpoint() throws {
        let run = try TrainingRun(config: smallConfig(epochs: 1), splits: fashionSubset)
        _ = try run.trainer.step()
        let good = run.trainer.checkpoint().encoded()
        let path = "\(dir)/c.ckpt"
        var flipped = good
        flipped[good.count / 2] ^= 0x40
        #expect(throws: TrainError.checkpoint(path: path, reason: "checksum mismatch (file damaged or truncated)")) {
            try Checkpoint.decode(flipped, path: path)
        }
        #expect(throws: TrainError.checkpoint(path: path, reason: "checksum mismatch (file damaged or truncated)")) {
            try Checkpoint.decode(Array(good.prefix(good.count - 100)), path: path)
        }
        var v2 = good
        v2[4] = 9
        #expect(throws: TrainError.checkpoint(path: path, reason: "format version 9, this build reads version 2")) {
            try Checkpoint.decode(v2, path: path)
        }
        #expect(throws: TrainError.checkpoint(path: path, reason: "not a Skein checkpoint (bad magic)")) {
            try Checkpoint.decode(Array("hello world, not a checkpoint".utf8), path: path)
        }
        // A valid checkpoint of another model.
        var other = smallConfig(epochs: 1)
        other.model.hidden = [32]
        let otherRun = try TrainingRun(config: other, splits: fashionSubset)
        let error = #expect(throws: TrainError.self) { try otherRun.trainer.restore(try Checkpoint.decode(good, path: path), path: path) }
        #expect(error?.description.contains("it is for model") == true)
        // Every truncation is refused, never a trap.
        for cut in stride(from: 0, to: good.count, by: max(good.count / 300, 1)) {
            #expect(throws: TrainError.self) { try Checkpoint.decode(Array(good.prefix(cut)), path: path) }
        }
    }

    @Test("a checkpoint write replaces the file whole; one that cannot be written says where and leaves the old file and no temporary one")
    func checkpointWrites() throws {
        let run = try TrainingRun(config: smallConfig(epochs: 1), splits: fashionSubset)
        let first = run.trainer.checkpoint()
        let path = "\(dir)/w.ckpt"
        try first.write(to: path)
        _ = try run.trainer.step()
        let second = run.trainer.checkpoint()
        try second.write(to: path)
        #expect(try Checkpoint.read(from: path) == second)
        // Into a directory that does not exist: the error names the file being written.
        let missing = "\(dir)/no-such-dir/x.ckpt"
        let e1 = #expect(throws: TrainError.self) { try first.write(to: missing) }
        #expect(e1?.description.contains("\(dir)/no-such-dir/x.ckpt.tmp-") == true, "\(String(describing: e1))")
        // Over a directory: the rename fails, the error names the target, nothing is left behind.
        let blocked = "\(dir)/blocked.ckpt"
        try FileManager.default.createDirectory(atPath: blocked, withIntermediateDirectories: true)
        let e2 = #expect(throws: TrainError.self) { try first.write(to: blocked) }
        #expect(e2?.description.contains("\(blocked): rename failed") == true, "\(String(describing: e2))")
        #expect(try Checkpoint.read(from: path) == second)
        let left = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".tmp-") }
        #expect(left.isEmpty, "temporary files left: \(left)")
    }
}
