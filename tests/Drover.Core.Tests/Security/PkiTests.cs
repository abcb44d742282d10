using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Drover.Core.Security.Pki;

namespace Drover.Core.Tests.Security;

public sealed class PkiTests
{
    private static readonly DateTimeOffset Now = new(2030, 1, 2, 3, 4, 5, TimeSpan.Zero);
    private static readonly TimeSpan Day = TimeSpan.FromDays(1);

    private static X509Certificate2 NewCa(string name = "Drover test CA") => CertificateAuthority.CreateCa(name, Now, TimeSpan.FromDays(365));

    private static CertificateProfile AgentProfile(string id, TimeSpan? lifetime = null) =>
        new() { Identity = SpiffeId.Agent(id), Lifetime = lifetime ?? Day };

    [Fact]
    public void CreateCa_NewCluster_IsASelfSignedP256CaWithItsKey()
    {
        using var ca = NewCa();

        Assert.True(ca.HasPrivateKey);
        Assert.Equal(ca.SubjectName.Name, ca.IssuerName.Name);
        var constraints = Assert.Single(ca.Extensions.OfType<X509BasicConstraintsExtension>());
        Assert.True(constraints.CertificateAuthority);
        using var key = ca.GetECDsaPublicKey();
        Assert.Equal("1.2.840.10045.3.1.7", key!.ExportParameters(false).Curve.Oid.Value); // nistP256
    }

    [Fact]
    public void IssueFromSigningRequest_CsrAskingForAnotherName_CertificateCarriesOnlyTheIdentityTheCaGave()
    {
        using var ca = NewCa();
        using var key = CertificateAuthority.NewKey();
        // The requester asks for a master identity and a host name in its CSR; the CA ignores both.
        var request = new CertificateRequest("CN=spiffe://drover/master/10.0.0.1:5050", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddUri(new Uri("spiffe://drover/master/10.0.0.1:5050"));
        names.AddDnsName("master.example");
        request.CertificateExtensions.Add(names.Build());
        var csr = request.CreateSigningRequestPem();

        var issued = CertificateAuthority.IssueFromSigningRequest(ca, csr, AgentProfile("agent-1"), Now);

        Assert.True(issued.Succeeded, issued.Error);
        using var cert = issued.Value!;
        Assert.Equal(SpiffeId.Agent("agent-1"), SpiffeId.FromCertificate(cert));
        Assert.Equal(["spiffe://drover/agent/agent-1"], SpiffeId.SubjectAltUris(cert));
        Assert.Empty(Assert.Single(cert.Extensions.OfType<X509SubjectAlternativeNameExtension>()).EnumerateDnsNames());
        Assert.Null(CertificateVerifier.Verify(cert, [ca], Now, CertificateUse.Client));
        Assert.Null(CertificateVerifier.Verify(cert, [ca], Now, CertificateUse.Server));
        Assert.Equal(Now + Day, cert.NotAfter.ToUniversalTime(), TimeSpan.FromSeconds(1));
    }

    [Fact]
    public void IssueFromSigningRequest_SignatureDoesNotMatchTheKey_Refused()
    {
        using var ca = NewCa();
        using var key = CertificateAuthority.NewKey();
        var der = new CertificateRequest("CN=x", key, HashAlgorithmName.SHA256).CreateSigningRequest();
        der[^3] ^= 0x55; // inside the signature
        var tampered = PemEncoding.WriteString("CERTIFICATE REQUEST", der);

        var issued = CertificateAuthority.IssueFromSigningRequest(ca, tampered, AgentProfile("agent-1"), Now);

        Assert.False(issued.Succeeded);
        Assert.StartsWith("csr:", issued.Error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----")]
    [InlineData("not pem")]
    public void IssueFromSigningRequest_Garbage_RefusedWithTheField(string csr)
    {
        using var ca = NewCa();

        var issued = CertificateAuthority.IssueFromSigningRequest(ca, csr, AgentProfile("agent-1"), Now);

        Assert.False(issued.Succeeded);
        Assert.StartsWith("csr:", issued.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void IssueFromSigningRequest_ShortRsaKey_Refused()
    {
        using var ca = NewCa();
        using var rsa = RSA.Create(1024);
        var csr = new CertificateRequest("CN=x", rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1).CreateSigningRequestPem();

        var issued = CertificateAuthority.IssueFromSigningRequest(ca, csr, AgentProfile("agent-1"), Now);

        Assert.False(issued.Succeeded);
        Assert.Contains("1024 bits", issued.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void Verify_CertificateOfAnotherCa_Refused()
    {
        using var ca = NewCa();
        using var other = NewCa("attacker CA");
        using var forged = CertificateAuthority.IssueWithNewKey(other, AgentProfile("agent-1"), Now);

        var (identity, error) = CertificateVerifier.VerifyIdentity(forged, [ca], Now, CertificateUse.Client);

        Assert.Null(identity);
        Assert.NotNull(error);
    }

    [Fact]
    public void Verify_ExpiredOrNotYetValid_RefusedSayingWhen()
    {
        using var ca = NewCa();
        using var cert = CertificateAuthority.IssueWithNewKey(ca, AgentProfile("agent-1", TimeSpan.FromHours(1)), Now);

        Assert.Null(CertificateVerifier.Verify(cert, [ca], Now + TimeSpan.FromMinutes(59), CertificateUse.Client));
        Assert.Contains("expired", CertificateVerifier.Verify(cert, [ca], Now + TimeSpan.FromMinutes(61), CertificateUse.Client), StringComparison.Ordinal);
        Assert.Contains("not valid before", CertificateVerifier.Verify(cert, [ca], Now - TimeSpan.FromHours(1), CertificateUse.Client), StringComparison.Ordinal);
    }

    [Fact]
    public void Verify_CaCertificatePresentedAsLeaf_HasNoIdentity()
    {
        using var ca = NewCa();

        var (identity, error) = CertificateVerifier.VerifyIdentity(ca, [ca], Now, CertificateUse.Client);

        Assert.Null(identity);
        Assert.Contains("no Drover identity", error, StringComparison.Ordinal);
    }

    [Fact]
    public void IssueWithNewKey_MasterProfile_ServesItsNamesAndIdentity()
    {
        using var ca = NewCa();
        using var cert = CertificateAuthority.IssueWithNewKey(ca, new CertificateProfile
        {
            Identity = SpiffeId.Master("10.0.0.1:5050"),
            DnsNames = ["localhost", "m1"],
            IpAddresses = [IPAddress.Loopback, IPAddress.Parse("10.0.0.1"), IPAddress.IPv6Loopback],
            Lifetime = Day,
        }, Now);

        Assert.True(cert.HasPrivateKey);
        Assert.Equal(SpiffeId.Master("10.0.0.1:5050"), SpiffeId.FromCertificate(cert));
        var san = Assert.Single(cert.Extensions.OfType<X509SubjectAlternativeNameExtension>());
        Assert.Equal(["localhost", "m1"], san.EnumerateDnsNames());
        Assert.Equal([IPAddress.Loopback, IPAddress.Parse("10.0.0.1"), IPAddress.IPv6Loopback], san.EnumerateIPAddresses());
    }

    [Fact]
    public void IssueWithNewKey_LifetimeBeyondTheCa_EndsWithTheCa()
    {
        using var ca = CertificateAuthority.CreateCa("short CA", Now, Day);
        using var cert = CertificateAuthority.IssueWithNewKey(ca, AgentProfile("agent-1", TimeSpan.FromDays(30)), Now);

        Assert.Equal(ca.NotAfter, cert.NotAfter);
    }

    [Fact]
    public void FromCertificate_TwoDroverIdentities_NoIdentity()
    {
        using var ca = NewCa();
        using var key = CertificateAuthority.NewKey();
        var request = new CertificateRequest("CN=x", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddUri(new Uri("spiffe://drover/agent/a"));
        names.AddUri(new Uri("spiffe://drover/agent/b"));
        request.CertificateExtensions.Add(names.Build());
        using var cert = request.CreateSelfSigned(Now, Now + Day);

        Assert.Equal(["spiffe://drover/agent/a", "spiffe://drover/agent/b"], SpiffeId.SubjectAltUris(cert));
        Assert.Null(SpiffeId.FromCertificate(cert));
    }

    [Theory]
    [InlineData("spiffe://drover/agent/agent-0123", IdentityKind.Agent, "agent-0123")]
    [InlineData("spiffe://drover/master/10.0.0.1:5050", IdentityKind.Master, "10.0.0.1:5050")]
    [InlineData("spiffe://drover/master/[::1]:5050", IdentityKind.Master, "[::1]:5050")]
    public void TryParse_DroverIdentities_Parsed(string text, IdentityKind kind, string name)
    {
        Assert.Equal(new SpiffeId(kind, name), SpiffeId.TryParse(text));
        Assert.Equal(text, SpiffeId.TryParse(text)!.Uri);
    }

    [Theory]
    [InlineData("spiffe://drover/agent/")]
    [InlineData("spiffe://drover/agent/../x")]
    [InlineData("spiffe://drover/agent/a/b")]
    [InlineData("spiffe://other/agent/a")]
    [InlineData("spiffe://drover/master/host")]
    [InlineData("spiffe://drover/master/host:99999")]
    [InlineData("spiffe://drover/master/host:-1")]
    [InlineData("https://drover/agent/a")]
    public void TryParse_NotADroverIdentity_Null(string text) => Assert.Null(SpiffeId.TryParse(text));

    [Fact]
    public void LoadWithKey_ExportedCertificateAndKey_RoundTrips()
    {
        using var ca = NewCa();
        using var cert = CertificateAuthority.IssueWithNewKey(ca, AgentProfile("agent-1"), Now);
        var pem = PemCertificates.ExportWithKey(cert);

        var loaded = PemCertificates.LoadWithKey(pem, pem);

        Assert.True(loaded.Succeeded, loaded.Error);
        using var back = loaded.Value!;
        Assert.True(back.HasPrivateKey);
        Assert.Equal(cert.Thumbprint, back.Thumbprint);
        Assert.Contains("PRIVATE KEY", pem, StringComparison.Ordinal);
    }

    [Fact]
    public void LoadWithKey_KeyOfAnotherCertificate_Refused()
    {
        using var ca = NewCa();
        using var a = CertificateAuthority.IssueWithNewKey(ca, AgentProfile("agent-1"), Now);
        using var b = CertificateAuthority.IssueWithNewKey(ca, AgentProfile("agent-2"), Now);

        var loaded = PemCertificates.LoadWithKey(PemCertificates.Export(a), PemCertificates.ExportWithKey(b));

        Assert.False(loaded.Succeeded);
    }

    [Fact]
    public void FingerprintAndPublicKeyHash_AreTheSha256OfTheDerAndOfTheKeyInfo()
    {
        using var ca = NewCa();

        var fingerprint = PemCertificates.Fingerprint(ca);

        Assert.Equal(Convert.ToHexString(SHA256.HashData(ca.RawData)), fingerprint.Replace(":", "", StringComparison.Ordinal));
        Assert.Equal(32, fingerprint.Split(':').Length);
        Assert.True(PemCertificates.FingerprintMatches(ca, fingerprint.ToLowerInvariant()));
        Assert.False(PemCertificates.FingerprintMatches(ca, fingerprint[..^2] + "00"));
        Assert.Equal("sha256:" + Convert.ToHexStringLower(SHA256.HashData(ca.PublicKey.ExportSubjectPublicKeyInfo())), PemCertificates.PublicKeyHash(ca));
    }

    [Fact]
    public void JoinToken_TextRoundTrips_AndOnlyTheSecretMatchesItsHash()
    {
        using var ca = NewCa();
        var token = JoinToken.Create(PemCertificates.PublicKeyHash(ca));

        var (parsed, error) = JoinToken.Parse(token.Text);

        Assert.Null(error);
        Assert.Equal(token, parsed);
        Assert.DoesNotContain(token.Secret, token.ToString(), StringComparison.Ordinal);
        Assert.True(JoinToken.SecretMatches(token.Secret, token.SecretHash));
        Assert.False(JoinToken.SecretMatches(token.Secret + "x", token.SecretHash));
        Assert.Equal((token.Id, token.Secret), JoinToken.ParseCredential(token.Credential));
    }

    [Theory]
    [InlineData("")]
    [InlineData("drover1.abc.def.ghi")]
    [InlineData("drover2.0123456789ab.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.0000000000000000000000000000000000000000000000000000000000000000")]
    [InlineData("drover1.0123456789ab.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.00")]
    public void JoinToken_Malformed_RefusedWithAReason(string text)
    {
        var (token, error) = JoinToken.Parse(text);

        Assert.Null(token);
        Assert.NotNull(error);
    }
}
