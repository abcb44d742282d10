using Drover.Core.Marathon;

namespace Drover.Core.Tests.Marathon;

internal static class MarathonTestSupport
{
    public static AppDefinition Parse(string json)
    {
        Assert.True(MarathonJson.TryParseApp(json, out var app, out var error), error is null ? "" : MarathonJson.Serialize(error));
        return app;
    }

    /// <summary>Parses and validates; asserts the app is valid.</summary>
    public static AppDefinition Valid(string json, string? parent = null)
    {
        var app = Parse(json);
        var error = MarathonValidator.Validate(app, parent);
        Assert.True(error is null, error is null ? "" : MarathonJson.Serialize(error));
        return app;
    }

    /// <summary>Parses and validates; asserts the app is invalid and returns the 422.</summary>
    public static MarathonError Invalid(string json, string? parent = null)
    {
        var error = MarathonValidator.Validate(Parse(json), parent);
        Assert.NotNull(error);
        Assert.Equal("Object is not valid", error.Message);
        Assert.Equal(422, error.StatusCode);
        return error;
    }

    /// <summary>Asserts that <paramref name="json"/> fails with exactly one error, at <paramref name="path"/>.</summary>
    public static void OnlyError(string json, string path, string expected)
    {
        var error = Invalid(json);
        var detail = Assert.Single(error.Details);
        Assert.Equal(path, detail.Path);
        Assert.Equal([expected], detail.Errors.ToArray());
    }

    public static void HasError(MarathonError error, string path, string expected) =>
        Assert.True(error.ErrorsAt(path).Contains(expected), $"expected '{expected}' at {path}; got {MarathonJson.Serialize(error)}");
}
