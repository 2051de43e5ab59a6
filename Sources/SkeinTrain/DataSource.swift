/// Loads the splits a `DataConfig` names, normalised with statistics of the training split.
public struct DataSplits: Sendable {
    public var train: Dataset
    public var validation: Dataset?
    public var test: Dataset?
}

public enum DataSource {
    public static let fashionMNISTDirectory = "/usr/share/datasets/fashion-mnist"

    public static func load(_ config: DataConfig, seed: UInt64) throws(TrainError) -> DataSplits {
        var train: Dataset
        var test: Dataset?
        do {
            switch config.source {
            case .fashionMNIST:
                let dir = config.path ?? fashionMNISTDirectory
                train = try IDXReader.loadClassification(images: "\(dir)/train-images-idx3-ubyte.gz",
                                                         labels: "\(dir)/train-labels-idx1-ubyte.gz", name: "fashion-mnist/train")
                test = try IDXReader.loadClassification(images: "\(dir)/t10k-images-idx3-ubyte.gz",
                                                        labels: "\(dir)/t10k-labels-idx1-ubyte.gz", name: "fashion-mnist/test")
            case .csv:
                train = try CSVReader.load(config.path!, labelColumn: config.labelColumn, task: config.task).0
                if let t = config.testPath { test = try CSVReader.load(t, labelColumn: config.labelColumn, task: config.task).0 }
            }
        } catch {
            throw .data(error)
        }
        if config.limit > 0 {
            train = train.prefix(config.limit)
            test = test?.prefix(max(config.limit / 6, 1))
        }
        var validation: Dataset?
        if config.validationFraction > 0 {
            let s = train.split(validationFraction: config.validationFraction, seed: seed)
            train = s.train
            validation = s.validation
        }
        if config.normalize == .standard {
            let norm = Normalizer.standardize(fittedOn: train)
            norm.apply(to: &train)
            if validation != nil { norm.apply(to: &validation!) }
            if test != nil { norm.apply(to: &test!) }
        }
        return DataSplits(train: train, validation: validation, test: test)
    }
}
