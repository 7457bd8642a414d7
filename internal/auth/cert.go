package auth

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	"software.sslmate.com/src/go-pkcs12"
)

// certCredential reads an app's certificate: PEM (certificate and RSA key,
// the key unencrypted) or PKCS#12 (.pfx/.p12, opened with password). The
// format is told by content, not by the file name. Errors name the
// setting and the file, never the password.
func certCredential(path, password string) (confidential.Credential, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return confidential.Credential{}, fmt.Errorf("AZURE_CLIENT_CERTIFICATE_PATH: %w", err)
	}
	var (
		certs []*x509.Certificate
		key   crypto.PrivateKey
	)
	if bytes.Contains(data, []byte("-----BEGIN")) {
		certs, key, err = confidential.CertFromPEM(data, password)
		if err != nil {
			return confidential.Credential{}, fmt.Errorf("AZURE_CLIENT_CERTIFICATE_PATH %s: %v", path, err)
		}
	} else {
		certs, key, err = fromPKCS12(path, data, password)
		if err != nil {
			return confidential.Credential{}, err
		}
	}
	if _, ok := key.(*rsa.PrivateKey); !ok {
		return confidential.Credential{}, fmt.Errorf("AZURE_CLIENT_CERTIFICATE_PATH %s: the private key is %s; Microsoft Entra app certificates need an RSA key", path, keyKind(key))
	}
	cred, err := confidential.NewCredFromCert(certs, key)
	if err != nil {
		return confidential.Credential{}, fmt.Errorf("AZURE_CLIENT_CERTIFICATE_PATH %s: %v", path, err)
	}
	return cred, nil
}

func fromPKCS12(path string, data []byte, password string) ([]*x509.Certificate, crypto.PrivateKey, error) {
	key, cert, chain, err := pkcs12.DecodeChain(data, password)
	switch {
	case errors.Is(err, pkcs12.ErrIncorrectPassword):
		if password == "" {
			return nil, nil, fmt.Errorf("AZURE_CLIENT_CERTIFICATE_PASSWORD: %s is a password-protected PKCS#12 file and no password is set", path)
		}
		return nil, nil, fmt.Errorf("AZURE_CLIENT_CERTIFICATE_PASSWORD: the password does not open the PKCS#12 file %s", path)
	case err != nil:
		return nil, nil, fmt.Errorf("AZURE_CLIENT_CERTIFICATE_PATH %s: neither PEM nor a PKCS#12 file this program can read: %v", path, err)
	}
	return append([]*x509.Certificate{cert}, chain...), key, nil
}

func keyKind(key crypto.PrivateKey) string {
	switch key.(type) {
	case nil:
		return "missing"
	case *rsa.PrivateKey:
		return "RSA"
	default:
		return fmt.Sprintf("not RSA (%T)", key)
	}
}
