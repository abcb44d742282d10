using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Drover.Store.Etcd;
using Drover.Testing.Tls;

namespace Drover.Store.Tests.Etcd;

/// <summary>Loading <c>--store-ca</c>, <c>--store-cert</c>, <c>--store-key</c>: what loads, and a sentence for each file that does not.</summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class EtcdTlsFilesTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("drover-etcd-tls-files-").FullName;
    private readonly TestCertificateAuthority _ca = TestCertificateAuthority.Create();
    private readonly string _caFile;

    public EtcdTlsFilesTests() => _caFile = _ca.WriteCertificate(Path.Combine(_dir, "ca.pem"));

    public void Dispose()
    {
        _ca.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public void TryLoad_CaAndClientWithChain_LoadsAll()
    {
        using var client = _ca.IssueClient("drover");
        var (cert, key) = _ca.WritePem(client, _dir, "client", withChain: true);

        Assert.True(EtcdTlsFiles.TryLoad(_caFile, cert, key, out var tls, out var error), error?.Reason);

        Assert.Equal(_ca.Certificate.Thumbprint, Assert.Single(tls!.TrustedCas).Thumbprint);
        Assert.Equal(client.Thumbprint, tls.ClientCertificate!.Thumbprint);
        Assert.True(tls.ClientCertificate.HasPrivateKey);
        Assert.Equal(_ca.Certificate.Thumbprint, Assert.Single(tls.ClientCertificateChain).Thumbprint);
    }

    [Fact]
    public void TryLoad_CaOnly_NoClientCertificate()
    {
        Assert.True(EtcdTlsFiles.TryLoad(_caFile, null, null, out var tls, out _));

        Assert.Null(tls!.ClientCertificate);
    }

    [Fact]
    public void TryLoad_KeyReadableByGroupOnly_Accepted()
    {
        var (cert, key) = Client();
        File.SetUnixFileMode(key, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);

        Assert.True(EtcdTlsFiles.TryLoad(_caFile, cert, key, out _, out var error), error?.Reason);
    }

    [Theory]
    [InlineData(UnixFileMode.OtherRead)]
    [InlineData(UnixFileMode.OtherWrite)]
    public void TryLoad_KeyAccessibleByOthers_Refused(UnixFileMode extra)
    {
        var (cert, key) = Client();
        File.SetUnixFileMode(key, UnixFileMode.UserRead | UnixFileMode.UserWrite | extra);

        Assert.False(EtcdTlsFiles.TryLoad(_caFile, cert, key, out var tls, out var error));

        Assert.Null(tls);
        Assert.Equal(EtcdTlsFile.Key, error!.File);
        Assert.Contains("is accessible by other users", error.Reason, StringComparison.Ordinal);
        Assert.Contains("chmod 600", error.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void TryLoad_CertificateWithoutKey_Refused()
    {
        var (cert, _) = Client();

        Assert.False(EtcdTlsFiles.TryLoad(_caFile, cert, null, out _, out var error));

        Assert.Equal(new EtcdTlsFileError(EtcdTlsFile.Certificate, "a client certificate needs its private key (--store-key) too"), error);
    }

    [Fact]
    public void TryLoad_KeyWithoutCertificate_Refused()
    {
        var (_, key) = Client();

        Assert.False(EtcdTlsFiles.TryLoad(_caFile, null, key, out _, out var error));

        Assert.Equal(EtcdTlsFile.Key, error!.File);
    }

    [Theory]
    [InlineData(EtcdTlsFile.Ca)]
    [InlineData(EtcdTlsFile.Certificate)]
    [InlineData(EtcdTlsFile.Key)]
    public void TryLoad_MissingFile_RefusedNamingIt(EtcdTlsFile which)
    {
        var (cert, key) = Client();
        var missing = Path.Combine(_dir, "missing.pem");

        Assert.False(EtcdTlsFiles.TryLoad(which == EtcdTlsFile.Ca ? missing : _caFile, which == EtcdTlsFile.Certificate ? missing : cert,
            which == EtcdTlsFile.Key ? missing : key, out _, out var error));

        Assert.Equal(new EtcdTlsFileError(which, $"{missing} does not exist"), error);
    }

    [Fact]
    public void TryLoad_DirectoryAsCa_Refused()
    {
        Assert.False(EtcdTlsFiles.TryLoad(_dir, null, null, out _, out var error));

        Assert.Equal(new EtcdTlsFileError(EtcdTlsFile.Ca, $"{_dir} is a directory, not a PEM file"), error);
    }

    [Fact]
    public void TryLoad_CaFileWithoutCertificate_Refused()
    {
        var notPem = Path.Combine(_dir, "notpem.pem");
        File.WriteAllText(notPem, "hello\n");

        Assert.False(EtcdTlsFiles.TryLoad(notPem, null, null, out _, out var error));

        Assert.Equal(EtcdTlsFile.Ca, error!.File);
        Assert.Contains("holds no PEM certificate", error.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void TryLoad_KeyOfAnotherCertificate_Refused()
    {
        var (cert, _) = Client();
        using var other = _ca.IssueClient("other");
        var (_, otherKey) = _ca.WritePem(other, _dir, "other");

        Assert.False(EtcdTlsFiles.TryLoad(_caFile, cert, otherKey, out _, out var error));

        Assert.Equal(EtcdTlsFile.Key, error!.File);
        Assert.Contains("is not the private key of the certificate in", error.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void TryLoad_EncryptedKey_RefusedSayingSo()
    {
        using var client = _ca.IssueClient("drover");
        var (cert, key) = _ca.WritePem(client, _dir, "client");
        using (var ecdsa = client.GetECDsaPrivateKey()!)
        {
            File.WriteAllText(key, ecdsa.ExportEncryptedPkcs8PrivateKeyPem("secret", new PbeParameters(PbeEncryptionAlgorithm.Aes256Cbc, HashAlgorithmName.SHA256, 10_000)));
        }

        Assert.False(EtcdTlsFiles.TryLoad(_caFile, cert, key, out _, out var error));

        Assert.Equal(EtcdTlsFile.Key, error!.File);
        Assert.Contains("is encrypted", error.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void TryLoad_ExpiredCertificate_Refused()
    {
        var now = DateTimeOffset.UtcNow;
        using var client = _ca.Issue("old", CertificateUse.Client, [], [], now.AddDays(-3), now.AddDays(-1));
        var (cert, key) = _ca.WritePem(client, _dir, "old");

        Assert.False(EtcdTlsFiles.TryLoad(_caFile, cert, key, out _, out var error));

        Assert.Equal(EtcdTlsFile.Certificate, error!.File);
        Assert.Contains("(CN=old) expired on", error.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void TryLoad_ServerOnlyCertificate_RefusedAsNotForClients()
    {
        using var server = _ca.Issue("server-only", CertificateUse.Server, [IPAddress.Loopback], []);
        var (cert, key) = _ca.WritePem(server, _dir, "server-only");

        Assert.False(EtcdTlsFiles.TryLoad(_caFile, cert, key, out _, out var error));

        Assert.Equal(EtcdTlsFile.Certificate, error!.File);
        Assert.Contains("is not for client authentication", error.Reason, StringComparison.Ordinal);
    }

    private (string Certificate, string Key) Client()
    {
        using var client = _ca.IssueClient("drover");
        return _ca.WritePem(client, _dir, "client");
    }
}
