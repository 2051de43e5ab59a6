/// A complete training run as plain values: what `skein train CONFIG.yaml` reads, and what a
/// built-in sweep trial runs with its parameters filled in.
public struct TrainConfig: Codable, Equatable, Sendable {
    public var name: String
    public var seed: UInt64
    public var data: DataConfig
    public var model: ModelConfig
    public var training: TrainingSettings
    public var checkpoint: CheckpointConfig

    public init(name: String = "train", seed: UInt64 = 0, data: DataConfig = DataConfig(), model: ModelConfig = ModelConfig(),
                training: TrainingSettings = TrainingSettings(), checkpoint: CheckpointConfig = CheckpointConfig()) {
        self.name = name; self.seed = seed; self.data = data; self.model = model; self.training = training; self.checkpoint = checkpoint
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = TrainConfig()
        name = try c.decodeIfPresent(String.self, forKey: .name) ?? d.name
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? d.seed
        data = try c.decodeIfPresent(DataConfig.self, forKey: .data) ?? d.data
        model = try c.decodeIfPresent(ModelConfig.self, forKey: .model) ?? d.model
        training = try c.decodeIfPresent(TrainingSettings.self, forKey: .training) ?? d.training
        checkpoint = try c.decodeIfPresent(CheckpointConfig.self, forKey: .checkpoint) ?? d.checkpoint
    }

    public func validate() throws(TrainError) {
        try data.validate()
        try model.validate()
        try training.validate()
        if model.kind == .linearRegression && data.task != .regression {
            throw .invalidConfig("model.kind linear_regression needs data.task regression")
        }
        if model.kind != .linearRegression && data.task == .regression && model.kind == .softmaxRegression {
            throw .invalidConfig("model.kind softmax_regression needs data.task classification")
        }
    }
}

public struct DataConfig: Codable, Equatable, Sendable {
    public enum Source: String, Codable, Sendable { case fashionMNIST = "fashion-mnist", csv }
    public enum Normalization: String, Codable, Sendable { case standard, none }

    public var source: Source
    /// Directory of the IDX files (fashion-mnist) or the training CSV file.
    public var path: String?
    /// A CSV test set (fashion-mnist always has its 10k test set).
    public var testPath: String?
    public var labelColumn: String
    public var task: CSVReader.Task
    public var validationFraction: Double
    public var normalize: Normalization
    /// Use only the first `limit` training rows (and limit/6 test rows); 0 = all. For quick runs.
    public var limit: Int

    public init(source: Source = .fashionMNIST, path: String? = nil, testPath: String? = nil, labelColumn: String = "label",
                task: CSVReader.Task = .classification, validationFraction: Double = 0, normalize: Normalization = .standard, limit: Int = 0) {
        self.source = source; self.path = path; self.testPath = testPath; self.labelColumn = labelColumn; self.task = task
        self.validationFraction = validationFraction; self.normalize = normalize; self.limit = limit
    }

    enum CodingKeys: String, CodingKey {
        case source = "dataset", path, testPath = "test_path", labelColumn = "label_column", task,
             validationFraction = "validation_fraction", normalize, limit
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = DataConfig()
        source = try c.decodeIfPresent(Source.self, forKey: .source) ?? d.source
        path = try c.decodeIfPresent(String.self, forKey: .path)
        testPath = try c.decodeIfPresent(String.self, forKey: .testPath)
        labelColumn = try c.decodeIfPresent(String.self, forKey: .labelColumn) ?? d.labelColumn
        task = try c.decodeIfPresent(CSVReader.Task.self, forKey: .task) ?? d.task
        validationFraction = try c.decodeIfPresent(Double.self, forKey: .validationFraction) ?? d.validationFraction
        normalize = try c.decodeIfPresent(Normalization.self, forKey: .normalize) ?? d.normalize
        limit = try c.decodeIfPresent(Int.self, forKey: .limit) ?? d.limit
    }

    public func validate() throws(TrainError) {
        guard validationFraction >= 0, validationFraction < 1 else { throw .invalidConfig("data.validation_fraction must be in [0, 1)") }
        guard limit >= 0 else { throw .invalidConfig("data.limit must be >= 0") }
        if source == .csv && path == nil { throw .invalidConfig("data.path is required for dataset csv") }
    }
}

public struct ModelConfig: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, Sendable {
        case mlp, softmaxRegression = "softmax_regression", linearRegression = "linear_regression"
    }
    public enum ActivationName: String, Codable, Sendable { case relu, tanh, gelu
        var layer: Layer { switch self { case .relu: .relu; case .tanh: .tanh; case .gelu: .gelu } }
    }
    public var kind: Kind
    public var hidden: [Int]
    public var activation: ActivationName
    public var dropout: Float

    public init(kind: Kind = .mlp, hidden: [Int] = [256, 128], activation: ActivationName = .relu, dropout: Float = 0) {
        self.kind = kind; self.hidden = hidden; self.activation = activation; self.dropout = dropout
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = ModelConfig()
        kind = try c.decodeIfPresent(Kind.self, forKey: .kind) ?? d.kind
        hidden = try c.decodeIfPresent([Int].self, forKey: .hidden) ?? (kind == .mlp ? d.hidden : [])
        activation = try c.decodeIfPresent(ActivationName.self, forKey: .activation) ?? d.activation
        dropout = try c.decodeIfPresent(Float.self, forKey: .dropout) ?? d.dropout
    }

    public func validate() throws(TrainError) {
        if kind != .mlp && !hidden.isEmpty { throw .invalidConfig("model.hidden must be empty for \(kind.rawValue)") }
        if kind == .mlp && hidden.isEmpty { throw .invalidConfig("model.hidden needs at least one layer size for mlp") }
        if let bad = hidden.first(where: { $0 < 1 }) { throw .invalidConfig("model.hidden sizes must be >= 1 (got \(bad))") }
        guard dropout >= 0, dropout < 1 else { throw .invalidConfig("model.dropout must be in [0, 1)") }
    }

    /// The network and loss for `inputs` features and `outputs` outputs.
    public func build(inputs: Int, outputs: Int) throws(TrainError) -> (Network, Loss) {
        let net = try Network.mlp(inputs: inputs, hidden: hidden, outputs: outputs, activation: activation.layer, dropout: dropout)
        return (net, kind == .linearRegression ? .meanSquaredError : .softmaxCrossEntropy)
    }
}

public struct CheckpointConfig: Codable, Equatable, Sendable {
    /// Where checkpoints go; nil = no checkpoints.
    public var directory: String?
    /// Write one every this many epochs (and at the end).
    public var everyEpochs: Int
    /// Also write one every this many steps (0 = off).
    public var everySteps: Int

    public init(directory: String? = nil, everyEpochs: Int = 1, everySteps: Int = 0) {
        self.directory = directory; self.everyEpochs = everyEpochs; self.everySteps = everySteps
    }
    enum CodingKeys: String, CodingKey { case directory = "dir", everyEpochs = "every_epochs", everySteps = "every_steps" }
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        directory = try c.decodeIfPresent(String.self, forKey: .directory)
        everyEpochs = try c.decodeIfPresent(Int.self, forKey: .everyEpochs) ?? 1
        everySteps = try c.decodeIfPresent(Int.self, forKey: .everySteps) ?? 0
    }
}
