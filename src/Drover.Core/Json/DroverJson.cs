using System.Text.Json;
using System.Text.Json.Serialization;
using Drover.Core.Api;
using Drover.Core.Protocol;

namespace Drover.Core.Json;

/// <summary>
/// Source-generated JSON for the agent protocol and the /drover/v1 API (camelCase). Resources,
/// attributes and port ranges travel in their Mesos text form so they stay exact and readable.
/// </summary>
[JsonSourceGenerationOptions(
    JsonSerializerDefaults.Web,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    UseStringEnumConverter = true,
    Converters = [typeof(ResourcesJsonConverter), typeof(AttributesJsonConverter), typeof(TimeSpanSecondsConverter)])]
[JsonSerializable(typeof(AgentRegistration))]
[JsonSerializable(typeof(AgentRegistered))]
[JsonSerializable(typeof(AgentHeartbeat))]
[JsonSerializable(typeof(AgentCommand))]
[JsonSerializable(typeof(LaunchTask))]
[JsonSerializable(typeof(FrameworkMessage))]
[JsonSerializable(typeof(ExecutorSpec))]
[JsonSerializable(typeof(StatusUpdateBatch))]
[JsonSerializable(typeof(ExecutorExit))]
[JsonSerializable(typeof(StatusUpdateAck))]
[JsonSerializable(typeof(FileChunk))]
[JsonSerializable(typeof(TaskSubmission))]
[JsonSerializable(typeof(TaskView))]
[JsonSerializable(typeof(TaskList))]
[JsonSerializable(typeof(AgentView))]
[JsonSerializable(typeof(AgentList))]
[JsonSerializable(typeof(DrainRequest))]
[JsonSerializable(typeof(ApiError))]
[JsonSerializable(typeof(AgentJoinRequest))]
[JsonSerializable(typeof(AgentJoinResponse))]
[JsonSerializable(typeof(CertificateRenewal))]
[JsonSerializable(typeof(CertificateIssued))]
[JsonSerializable(typeof(CaInfo))]
[JsonSerializable(typeof(JoinTokenRequest))]
[JsonSerializable(typeof(JoinTokenCreated))]
[JsonSerializable(typeof(JoinTokenList))]
[JsonSerializable(typeof(TaskSpec))]
[JsonSerializable(typeof(TaskStatus))]
[JsonSerializable(typeof(Drover.Core.State.PersistedTask))]
[JsonSerializable(typeof(Drover.Core.State.PersistedAgent))]
[JsonSerializable(typeof(Drover.Core.Health.HealthCheck))]
[JsonSerializable(typeof(Drover.Core.Secrets.SecretWrite))]
[JsonSerializable(typeof(Drover.Core.Secrets.SecretView))]
[JsonSerializable(typeof(Drover.Core.Secrets.SecretList))]
public sealed partial class DroverJsonContext : JsonSerializerContext;

public sealed class ResourcesJsonConverter : JsonConverter<Resources>
{
    public override Resources Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        Resources.TryParse(reader.GetString() ?? "", out var r, out var error) ? r : throw new JsonException(error);

    public override void Write(Utf8JsonWriter writer, Resources value, JsonSerializerOptions options) =>
        writer.WriteStringValue(value.ToString());
}

public sealed class AttributesJsonConverter : JsonConverter<Attributes>
{
    public override Attributes Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        Attributes.TryParse(reader.GetString() ?? "", out var a, out var error) ? a : throw new JsonException(error);

    public override void Write(Utf8JsonWriter writer, Attributes value, JsonSerializerOptions options) =>
        writer.WriteStringValue(value.ToString());
}

/// <summary>TimeSpans travel as (fractional) seconds, the unit every Mesos/Marathon field uses.</summary>
public sealed class TimeSpanSecondsConverter : JsonConverter<TimeSpan>
{
    public override TimeSpan Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        TimeSpan.FromSeconds(reader.GetDouble());

    public override void Write(Utf8JsonWriter writer, TimeSpan value, JsonSerializerOptions options) =>
        writer.WriteNumberValue(value.TotalSeconds);
}
